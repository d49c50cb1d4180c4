"""The VPG-C module: residual visual prompts regenerated from the instruction's guidance.

VPG-C (Li et al., "Fine-tuning Multimodal LLMs to Follow Zero-shot Demonstrative
Instructions") reads, at an intermediate decoder layer, the hidden state of the instruction's
last prompt token (the guidance), conditions the visual prompt generator's queries on it,
lets the generator attend over the image's patch features again, and adds what comes out to
that image's visual tokens before the pass continues. Both maps that bring the guidance in
and the result out are zero-initialised, so a fresh adapter leaves the base's outputs exactly
as they were.

``ProjectorVPGC`` is that module for projector-style bases (LLaVA, Idefics3, Qwen2-VL,
Qwen2.5-VL, InternVL, Mistral3), which have no query-based generator to copy: their
"generator" is an MLP that maps each patch (or group of merged patches) to one visual token.
The design choice here: **one query per visual token, made from that token's own hidden
state at the hooked layer**::

    q_t   = W_q(LN(h_t)) + W_g(g)            # h_t: visual token t of image i, g: the guidance
    a_t   = MultiHeadAttention(q_t, keys/values = W_k, W_v(LN(patches of image i)))
    h_t  += W_o(a_t)                          # W_g and W_o zero-initialised

Why: the images of these bases become a varying number of visual tokens (Qwen2-VL's dynamic
resolution, Idefics3's tiles), so a fixed set of ``num_queries`` learned queries would need an
arbitrary map from queries to positions; a query per visual token makes the residual at
position ``t`` the answer to "what should token ``t`` look at again, given the instruction",
and the token's hidden state already says where in the image it sits, so the queries need no
learned positional table. The keys are the patch features the base's projector reads (its
input: after the vision tower's feature-layer selection, before the projection), so the
re-attention sees the image at the finer, pre-projector level, as VPG-C's Q-Former re-reads
the frozen image encoder's features. The whole module is a few linear maps of the LLM and
vision widths: light next to the base.

``QFormerVPGC`` is the faithful case for BLIP-2 (a trainable copy of the Q-Former's query
tokens, conditioned by a zero-initialised map of the guidance, run through the base's frozen
Q-Former over the image's patch features, mapped to the LLM width by a zero-initialised
linear and added at the image's query-token positions).

Every parameter name starts with ``vpgc_`` (what ``adapter_model.safetensors`` holds).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from drum.adapters.vpgc.config import VPGCConfig
from drum.lvlm.hooks import VisualPositions

PREFIX = "vpgc_"


class VPGCError(RuntimeError):
    """The adapter cannot match a batch's patch features to its images."""


def images_of(visual: VisualPositions) -> tuple[list[int], list[int]]:
    """Each image of the batch in prompt order (row-major): its row and its number of visual
    tokens (the mask within its span)."""
    mask = visual.mask.detach().to("cpu")
    rows, counts = [], []
    for row, spans in enumerate(visual.spans):
        for start, end in spans:
            rows.append(row)
            counts.append(int(mask[row, start:end].sum()))
    return rows, counts


def split_patches(flat: torch.Tensor, counts: Sequence[int]) -> list[torch.Tensor]:
    """Cut the batch's patch features ``(P, d)`` (every image's patches, images in prompt
    order) into one tensor per image: the projector maps each image's patches to its visual
    tokens at one fixed ratio (LLaVA 1, Idefics3 ``scale_factor**2``, Qwen2-VL
    ``spatial_merge_size**2``), so image ``i`` holds ``ratio * counts[i]`` of them."""
    total = sum(counts)
    if total == 0 or flat.shape[0] % total:
        raise VPGCError(
            f"{flat.shape[0]} patch features for {total} visual tokens: not a whole number of "
            "patches per visual token"
        )
    ratio = flat.shape[0] // total
    return list(torch.split(flat, [ratio * c for c in counts]))


def split_rows(
    rows: torch.Tensor,
    counts: Sequence[int],
    per_image: Sequence[int] | None = None,
    mask: torch.Tensor | None = None,
) -> list[torch.Tensor]:
    """Cut the batch's patch features ``(R, P, d)`` (one row per image, or per tile or crop:
    Idefics3's tiles, Gemma 3's pan-and-scan crops, Idefics2's splits) into one ``(n_i * P,
    d)`` tensor per image: image ``i`` holds ``per_image[i]`` rows when given (the family's
    ``patch_rows``), else ``counts[i] / k`` where every row becomes the same ``k`` visual
    tokens (``k = sum(counts) / R``; Idefics2's resampler makes 64 latents of 4,900 patches,
    which no per-patch ratio describes). ``mask`` ``(R, P)``: only its true patches are kept
    (Idefics2 pads every image to the batch's largest; without it an image's keys would
    depend on its batch-mates)."""
    if per_image is None:
        total = sum(counts)
        if total == 0 or total % rows.shape[0] or any(c % (total // rows.shape[0]) for c in counts):
            raise VPGCError(
                f"{rows.shape[0]} rows of patch features for images of {list(counts)} visual "
                "tokens: not the same number of visual tokens per row"
            )
        per_image = [c // (total // rows.shape[0]) for c in counts]
    if len(per_image) != len(counts) or sum(per_image) != rows.shape[0]:
        raise VPGCError(
            f"{rows.shape[0]} rows of patch features, but the images have {list(per_image)}"
        )
    if mask is not None:
        keep = mask.to(rows.device).bool()
        return [
            chunk[chunk_mask] for chunk, chunk_mask in zip(
                torch.split(rows, list(per_image)), torch.split(keep, list(per_image)), strict=True
            )
        ]  # fmt: skip
    return [chunk.reshape(-1, rows.shape[-1]) for chunk in torch.split(rows, list(per_image))]


class GuidedReattention(nn.Module):
    """The re-attention of the VPG-C kinds that make their own queries (``ProjectorVPGC``,
    ``CrossAttentionVPGC``): one query per position from what sits there (a visual token's
    hidden state, an image state), plus the row's guidance, attends over its image's patch
    features; the result is mapped back to the queries' width::

        q = W_q(LN(x)) + W_g(g)        a = MultiHeadAttention(q, W_k/W_v(LN(patches)))
        residual = W_o(a)              W_g and W_o zero-initialised

    Parameter names (``vpgc_*``) are the saved adapter's tensor names; they are made in one
    order under ``config.seed``, so a config always starts from the same weights."""

    def __init__(self, config: VPGCConfig, query_width: int) -> None:
        super().__init__()
        config.check()
        assert config.hidden_size and config.llm_hidden_size and config.vision_hidden_size
        self.config = config
        width, llm, vision = config.hidden_size, config.llm_hidden_size, config.vision_hidden_size
        self.num_heads = config.num_heads
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.vpgc_query_norm = nn.LayerNorm(query_width)
            self.vpgc_query_proj = nn.Linear(query_width, width)
            self.vpgc_guidance_proj = nn.Linear(llm, width)
            self.vpgc_patch_norm = nn.LayerNorm(vision)
            self.vpgc_key_proj = nn.Linear(vision, width)
            self.vpgc_value_proj = nn.Linear(vision, width)
            self.vpgc_out_proj = nn.Linear(width, query_width)
        for zero in (self.vpgc_guidance_proj, self.vpgc_out_proj):
            nn.init.zeros_(zero.weight)
            nn.init.zeros_(zero.bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        n, length, width = x.shape
        return x.view(n, length, self.num_heads, width // self.num_heads).transpose(1, 2)

    def reattend(
        self,
        queries: torch.Tensor,
        guidance: torch.Tensor,
        patches: torch.Tensor,
        patch_mask: torch.Tensor,
    ) -> torch.Tensor:
        """The residual ``(N, L, query_width)`` of ``N`` images' ``L`` query sources
        ``queries``, each image attending over its ``patches`` ``(N, M, d)`` (``patch_mask``
        ``(N, M)``: its real ones) with its row's ``guidance`` ``(N, D)``."""
        q = self.vpgc_query_proj(self.vpgc_query_norm(queries))
        q = q + self.vpgc_guidance_proj(guidance)[:, None, :]
        normed = self.vpgc_patch_norm(patches)
        k, v = self.vpgc_key_proj(normed), self.vpgc_value_proj(normed)
        attended = F.scaled_dot_product_attention(
            self._heads(q), self._heads(k), self._heads(v), attn_mask=patch_mask[:, None, None, :]
        )
        attended = attended.transpose(1, 2).reshape(queries.shape[0], queries.shape[1], -1)
        return self.vpgc_out_proj(attended)


class ProjectorVPGC(GuidedReattention):
    """VPG-C for projector-style bases (module docstring): residuals at visual positions."""

    def __init__(self, config: VPGCConfig) -> None:
        assert config.llm_hidden_size
        super().__init__(config, config.llm_hidden_size)

    def per_image(
        self,
        patches: torch.Tensor,
        counts: Sequence[int],
        rows: Sequence[int] | None = None,
        mask: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        """The captured projector input cut per image: ``split_rows`` for rows of patches
        (``rows``: each image's, where its family says; ``mask``: the real patches, where the
        projector is told), ``split_patches`` for the flat patches of Qwen2-VL-style towers."""
        if patches.ndim == 3:
            return split_rows(patches, counts, rows, mask)
        return split_patches(patches.reshape(-1, patches.shape[-1]), counts)

    def forward(
        self, hidden: torch.Tensor, visual: VisualPositions, per_image: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        """``hidden`` ``(B, T, D)`` with every image's residual added at its visual tokens;
        ``per_image``: each image's patch features ``(P_i, d)``, images in prompt order."""
        layout = _Layout.of(hidden, visual, len(per_image))
        if layout is None:
            return hidden
        device = hidden.device
        keys = nn.utils.rnn.pad_sequence(
            [p.to(device=device, dtype=hidden.dtype) for p in per_image], batch_first=True
        )
        lengths = torch.tensor([p.shape[0] for p in per_image], device=device)
        key_mask = torch.arange(keys.shape[1], device=device)[None, :] < lengths[:, None]
        residual = self.reattend(layout.queries, layout.guidance, keys, key_mask)
        return layout.add(hidden, residual)


class _Layout:
    """Where a batch's images sit: each visual token's image and slot, each image's visual
    tokens gathered ``(N, T_max, D)`` and its row's guidance ``(N, D)``."""

    def __init__(self, hidden: torch.Tensor, visual: VisualPositions, counts: list[int]) -> None:
        device = hidden.device
        rows, _ = images_of(visual)
        self.n = len(counts)
        count = torch.tensor(counts, device=device)
        # Visual tokens in mask order are the images' tokens in prompt order (row-major).
        self.token_rows, self.token_cols = visual.mask.nonzero(as_tuple=True)
        self.image_of = torch.repeat_interleave(torch.arange(self.n, device=device), count)
        first = torch.cumsum(count, 0) - count
        self.slot = torch.arange(len(self.image_of), device=device) - first[self.image_of]
        queries = hidden.new_zeros(self.n, int(count.max()), hidden.shape[-1])
        self.queries = queries.index_put(
            (self.image_of, self.slot), hidden[self.token_rows, self.token_cols]
        )
        row_index = torch.tensor(rows, device=device)
        self.guidance = hidden[row_index, visual.last[row_index]]

    @classmethod
    def of(cls, hidden: torch.Tensor, visual: VisualPositions, images: int) -> _Layout | None:
        """None for a batch without images; a ``VPGCError`` when the patch features are not
        one per image."""
        _, counts = images_of(visual)
        if not counts:
            return None
        if images != len(counts):
            raise VPGCError(f"patch features for {images} images, the batch has {len(counts)}")
        return cls(hidden, visual, counts)

    def add(self, hidden: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """``hidden`` plus ``residual[image, slot]`` (``(N, T_max, D)``) at each visual token."""
        values = residual[self.image_of, self.slot].to(hidden.dtype)
        return hidden.index_put((self.token_rows, self.token_cols), values, accumulate=True)


class QFormerVPGC(nn.Module):
    """VPG-C for BLIP-2 (module docstring): a trainable copy of the Q-Former's query tokens,
    plus a zero-init map of the guidance, through the base's frozen Q-Former over the image's
    patch features; a zero-init map to the LLM width, added at the image's query tokens (query
    ``j``'s output to the image's ``j``-th visual token; with ``query_copies`` > 1, query ``j``'s
    copies' outputs side by side)."""

    def __init__(self, config: VPGCConfig, qformer: nn.Module, query_tokens: torch.Tensor) -> None:
        super().__init__()
        config.check()
        assert config.hidden_size and config.llm_hidden_size and config.num_queries
        self.config = config
        # Kept out of the state dict and the parameters: the base's, frozen.
        self._qformer = (qformer,)
        self.copies = config.query_copies
        queries = query_tokens.detach().clone().reshape(config.num_queries, config.hidden_size)
        self.vpgc_query_tokens = nn.Parameter(queries.repeat(self.copies, 1))
        self.vpgc_guidance_proj = nn.Linear(config.llm_hidden_size, config.hidden_size)
        self.vpgc_out_proj = nn.Linear(self.copies * config.hidden_size, config.llm_hidden_size)
        for zero in (self.vpgc_guidance_proj, self.vpgc_out_proj):
            nn.init.zeros_(zero.weight)
            nn.init.zeros_(zero.bias)

    def per_image(
        self,
        patches: torch.Tensor,
        counts: Sequence[int],
        rows: Sequence[int] | None = None,
        mask: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        """The vision tower's output ``(N, P, d)`` (one image each), one tensor per image."""
        if patches.ndim != 3 or patches.shape[0] != len(counts):
            raise VPGCError(
                f"vision features of shape {tuple(patches.shape)} for {len(counts)} images"
            )
        if any(c != self.config.num_queries for c in counts):
            raise VPGCError(f"images of {list(counts)} tokens, not {self.config.num_queries}")
        return list(patches)

    def forward(
        self, hidden: torch.Tensor, visual: VisualPositions, per_image: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        layout = _Layout.of(hidden, visual, len(per_image))
        if layout is None:
            return hidden
        (qformer,) = self._qformer
        patches = torch.stack(list(per_image))
        dtype = self.vpgc_query_tokens.dtype
        queries = self.vpgc_query_tokens[None] + self.vpgc_guidance_proj(
            layout.guidance.to(self.vpgc_guidance_proj.weight.dtype)
        )[:, None, :].to(dtype)
        output = qformer(
            query_embeds=queries,
            encoder_hidden_states=patches.to(dtype),
            encoder_attention_mask=torch.ones(
                patches.shape[:2], dtype=torch.long, device=patches.device
            ),
            return_dict=True,
        ).last_hidden_state
        # (N, copies * Q, w) -> (N, Q, copies * w): query j's copies side by side.
        n, _, width = output.shape
        output = (
            output.view(n, self.copies, -1, width)
            .transpose(1, 2)
            .reshape(n, -1, self.copies * width)
        )
        return layout.add(hidden, self.vpgc_out_proj(output.to(self.vpgc_out_proj.weight.dtype)))

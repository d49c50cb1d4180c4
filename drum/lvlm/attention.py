"""Where the frozen base looks least: the attention that chooses VPG-C's edited regions.

Two readings, one per base family, both ending in a weight per **patch** of the vision
tower's grid (``g x g`` patches of ``patch`` pixels, row-major, CLS excluded):

* **BLIP-2** (``qformer_patch_attention``): the language model never sees patches, only the
  Q-Former's query outputs, so the attention that decides what reaches it is the Q-Former's
  cross-attention from its learned queries to the vision tower's output. The weight of patch
  ``p`` is

  ``w_p = mean over cross-attention layers l, heads h, queries q of A[l, h, q, 1 + p]``

  (``A`` softmax-normalised over the ``1 + g^2`` vision tokens; index 0, the CLS token, is no
  place in the image and is dropped). BLIP-2's queries do not read the instruction (unlike
  InstructBLIP's), so this choice depends on the image alone.
* **Projector-style bases** (``patch_attention`` then ``visual_tokens_to_grid``): the
  attention of the prompt's last token (the instruction's end) to the first image's visual
  tokens, averaged over heads and layers (eager attention). Each visual token is mapped back
  to the patches it came from: ``g^2 + 1`` tokens are CLS plus one per patch (the built-in
  LVLM), ``g^2`` one per patch (LLaVA's ``"default"`` selection), ``(g / m)^2`` one per
  ``m x m`` block of patches in row-major order (Qwen2-VL's 2 x 2 merger, Idefics3's pixel
  shuffle, ``m`` from the base's family record: ``token_merge``); a token's weight goes to each
  of its patches. Any other count (an image the processor resized or tiled) is an error.

``least_attended_blocks(weights, block)``: the ``block x block`` square of patches (top-left
corner at any patch) with the smallest summed weight, ties to the first in row-major order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np
import torch

from drum.lvlm.families import cross_attention_refusal
from drum.lvlm.prompt import ICLPrompt

if TYPE_CHECKING:
    from drum.lvlm.hf import HFLVLM


@contextmanager
def eager_attention(model: torch.nn.Module) -> Iterator[None]:
    """Inside the block ``model`` runs eager attention (the one that returns its weights)."""
    previous = getattr(model.config, "_attn_implementation", None)
    model.set_attn_implementation("eager")
    try:
        yield
    finally:
        if previous is not None and previous != "eager":
            model.set_attn_implementation(previous)


@torch.no_grad()
def patch_attention(lvlm: HFLVLM, prompts: Sequence[ICLPrompt]) -> torch.Tensor:
    """``(B, n_tokens)``: the attention of each prompt's last token to the visual tokens of its
    first image, averaged over heads and layers (eager attention)."""
    inputs = lvlm.score_inputs(prompts, [[] for _ in prompts], positions=True)
    assert inputs.visual is not None
    extra = {k: v for k, v in inputs.extra.items() if k != "logits_to_keep"}
    with eager_attention(lvlm.model), lvlm.feature_cache_bypassed():
        out = lvlm.model(
            input_ids=inputs.input_ids,
            attention_mask=inputs.attention_mask,
            output_attentions=True,
            logits_to_keep=1,
            **extra,
        )
    attention = torch.stack([a.float() for a in out.attentions]).mean(dim=(0, 2))  # (B, T, T)
    rows = []
    for row in range(len(prompts)):
        spans = inputs.visual.spans[row]
        if not spans:
            raise ValueError(f"prompt {row} has no image")
        start, end = spans[0]
        # The span's visual tokens (a Pixtral image's row breaks are not).
        visual = inputs.visual.mask[row, start:end]
        rows.append(attention[row, int(inputs.visual.last[row]), start:end][visual])
    return torch.stack(rows)


@torch.no_grad()
def qformer_cross_attention(model: torch.nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
    """``(N, 1 + P)``: a BLIP-2 model's Q-Former cross-attention from its query tokens to the
    vision tower's output tokens (CLS first), averaged over cross-attention layers, heads and
    queries (eager attention), one row per image of ``pixel_values``."""
    with eager_attention(model):
        vision = model.vision_model(pixel_values=pixel_values).last_hidden_state
        queries = model.query_tokens.expand(vision.shape[0], -1, -1)
        out = model.qformer(
            query_embeds=queries,
            encoder_hidden_states=vision,
            encoder_attention_mask=torch.ones(
                vision.shape[:2], dtype=torch.long, device=vision.device
            ),
            output_attentions=True,
            return_dict=True,
        )
    if not out.cross_attentions:
        raise ValueError("the Q-Former returned no cross-attention weights")
    # Each: (N, heads, queries, 1 + P).
    return torch.stack([a.float() for a in out.cross_attentions]).mean(dim=(0, 2, 3))


@torch.no_grad()
def qformer_patch_attention(lvlm: HFLVLM, prompts: Sequence[ICLPrompt]) -> torch.Tensor:
    """``(B, P)``: ``qformer_cross_attention`` of each prompt's first image (the pixels the
    base's processor makes of it), the CLS token dropped."""
    inputs = lvlm.score_inputs(prompts, [[] for _ in prompts], positions=True)
    assert inputs.visual is not None
    pixel_values = inputs.extra.get("pixel_values")
    if pixel_values is None:
        raise ValueError(f"{lvlm.name}: the batch has no pixel_values")
    first, offset = [], 0
    for row, spans in enumerate(inputs.visual.spans):
        if not spans:
            raise ValueError(f"prompt {row} has no image")
        first.append(offset)
        offset += len(spans)
    weights = qformer_cross_attention(lvlm.model, pixel_values[first].to(lvlm.device))
    return weights[:, 1:]


def token_merge(lvlm: HFLVLM) -> int:
    """How many patches per side one visual token covers (the family's record: Qwen2-VL's
    ``spatial_merge_size``, Idefics3's pixel-shuffle ``scale_factor``, else 1)."""
    return lvlm.family.token_merge(lvlm.model.config)


def visual_tokens_to_grid(weights: torch.Tensor, grid: int, merge: int = 1) -> torch.Tensor:
    """``(B, n)`` weights of an image's visual tokens as ``(B, grid, grid)`` patch weights
    (module docstring): with ``merge == 1``, ``n`` is ``grid^2 + 1`` (CLS first) or ``grid^2``;
    with ``merge = m > 1``, ``n = (grid / m)^2`` tokens of ``m x m`` patches each, row-major."""
    n = weights.shape[1]
    if merge == 1 and n == grid * grid + 1:
        return weights[:, 1:].reshape(-1, grid, grid)
    if merge == 1 and n == grid * grid:
        return weights.reshape(-1, grid, grid)
    side = grid // merge
    if merge > 1 and grid % merge == 0 and n == side * side:
        blocks = weights.reshape(-1, side, side)
        return blocks.repeat_interleave(merge, dim=1).repeat_interleave(merge, dim=2)
    expected = f"{grid * grid + 1} or {grid * grid}" if merge == 1 else f"{side * side}"
    raise ValueError(
        f"{n} visual tokens per image do not map onto a {grid}x{grid} patch grid with "
        f"{merge}x{merge} patches per token (expected {expected}): the processor resized or "
        "tiled the image (e.g. Idefics3 with image splitting); give image_size / patch_size "
        "matching the base, or use region='random'"
    )


def patch_grid_attention(
    lvlm: HFLVLM, prompts: Sequence[ICLPrompt], grid: int, batch_size: int = 16
) -> torch.Tensor:
    """``(B, grid, grid)``: per prompt, how much the base attends to each patch of its first
    image (module docstring: the Q-Former's cross-attention for BLIP-2, the last prompt
    token's attention otherwise), in batches of ``batch_size`` prompts."""
    if lvlm.family.cross_attention:
        raise cross_attention_refusal(lvlm.family, "the attention reader")
    parts = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        if lvlm.family.qformer:
            weights = qformer_patch_attention(lvlm, chunk)
            if weights.shape[1] != grid * grid:
                raise ValueError(
                    f"{lvlm.name}: the vision tower gives {weights.shape[1]} patches, not a "
                    f"{grid}x{grid} grid"
                )
            parts.append(weights.reshape(-1, grid, grid))
        else:
            weights = patch_attention(lvlm, chunk)
            parts.append(visual_tokens_to_grid(weights, grid, token_merge(lvlm)))
    return torch.cat(parts)


def least_attended_blocks(weights: torch.Tensor, block: int) -> list[tuple[int, int]]:
    """Per ``(grid, grid)`` map of ``weights`` (``(B, grid, grid)``), the top-left patch
    ``(row, col)`` of the ``block x block`` square with the smallest summed weight; ties go to
    the first in row-major order (``numpy.argmin``)."""
    grid = weights.shape[-1]
    if not 1 <= block <= grid:
        raise ValueError(f"block must be in [1, {grid}], got {block}")
    maps = weights.detach().double().cpu().numpy()
    side = grid - block + 1
    chosen = []
    for grid_map in maps:
        sums = np.array(
            [
                [grid_map[r : r + block, c : c + block].sum() for c in range(side)]
                for r in range(side)
            ]
        )
        chosen.append(divmod(int(np.argmin(sums)), side))
    return chosen

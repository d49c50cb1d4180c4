"""VPG-C on cross-attention bases (IDEFICS v1, Mllama): the residual joins the image states.

These bases never write an image into the token sequence: each image stays one placeholder
token, and the language model reads the image through cross-attention layers whose keys and
values are the **image states** (IDEFICS: the perceiver resampler's latents, ``(B, N * S, D)``
with ``S`` latents per image slot, given to every gated cross-attention block; Mllama: the
projected vision output, ``(B * N * T, P, D)`` with ``T`` tiles of ``P`` patches per image slot,
given to every cross-attention decoder layer). ``N`` is the batch's image slots per row (rows
padded with empty images). The analogue of VPG-C's residual visual prompts is a residual on
those states, seen by the cross-attention layers after the guidance layer alone:

1. ``HFLVLM.layer_hook`` on the output of decoder layer ``k - 1`` reads each row's guidance
   ``g`` (the hidden state of the prompt's last token) and returns the hidden states as they
   are;
2. the first cross-attention module at or after layer ``k`` (``LVLMFamily.
   cross_attention_modules``: IDEFICS's block ``j`` runs before decoder layer ``j *
   cross_layer_interval``, Mllama's cross-attention layers are decoder layers) computes, for
   every real image of every row, one query per image state ``s`` (a latent, or a tile's
   patch)::

       q_s  = W_q(LN(s)) + W_g(g)                 W_g zero-init
       a_s  = MultiHeadAttention(q_s, W_k/W_v(LN(patches of that image)))
       s   += W_o(a_s)                             W_o zero-init

   where the patches are the vision tower's output for that image (what IDEFICS's perceiver
   and Mllama's projector read; Mllama: its real tiles alone, ``aspect_ratio_mask``), and the
   same residual goes to every cross-attention module from layer ``k`` on (a forward pre-hook
   on each rewrites its image-states argument, ``LVLMFamily.image_states_arg``). Padding
   images and padding tiles get no residual; modules before layer ``k`` see the untouched
   states, so a zero-initialised adapter is its base exactly.

Generation: Mllama caches each cross-attention layer's keys and values in the prefill (decode
steps pass no image states), so the residual acts through the cache; IDEFICS recomputes them
from the (unchanged) perceiver output at every decode step, so the residual the prefill
computed is kept and added again at every step until the next pass's guidance.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
from torch import nn

from drum.adapters.vpgc.config import VPGCConfig, VPGCConfigError
from drum.adapters.vpgc.layer import GuidedReattention, VPGCError, images_of
from drum.lvlm.families import module_at
from drum.lvlm.hooks import VisualPositions


class CrossAttentionVPGC(GuidedReattention):
    """VPG-C for cross-attention bases (module docstring): a residual per image state."""

    def __init__(self, config: VPGCConfig) -> None:
        assert config.state_size
        super().__init__(config, config.state_size)

    def forward(
        self,
        states: torch.Tensor,
        state_mask: torch.Tensor,
        patches: torch.Tensor,
        patch_mask: torch.Tensor,
        guidance: torch.Tensor,
    ) -> torch.Tensor:
        """The residual ``(N, L, Ds)`` of ``N`` images' states ``(N, L, Ds)``, zero where
        ``state_mask`` ``(N, L)`` is false; ``patches`` ``(N, M, d)`` are each image's keys,
        ``patch_mask`` ``(N, M)`` its real ones, ``guidance`` ``(N, D)`` its row's."""
        dtype = self.vpgc_out_proj.weight.dtype
        residual = self.reattend(
            states.to(dtype), guidance.to(dtype), patches.to(dtype), patch_mask
        )
        return residual * state_mask[..., None].to(dtype)


class CrossAttentionHooks:
    """The hooks that run a ``CrossAttentionVPGC`` inside its base's passes (module
    docstring); ``active()`` installs them for a ``with`` block.

    Args:
        base: the ``HFLVLM`` (a cross-attention family).
        adapter: the module.
        layer: VPG-C's ``k``: the guidance is read at the output of decoder layer ``k - 1``,
            the residual joins the states of every cross-attention module at layer ``k`` or
            later.
    """

    def __init__(self, base: Any, adapter: CrossAttentionVPGC, layer: int) -> None:
        self.base = base
        self.adapter = adapter
        self.layer = layer
        family = base.family
        self._arg = family.image_states_arg
        self._modules = family.cross_attention_modules(base.model)
        if not any(index >= layer for index, _ in self._modules):
            raise VPGCConfigError(
                f"VPG-C layer {layer}: {base.model_type} has no cross-attention layer at or "
                f"after it (they run at decoder layers {[i for i, _ in self._modules]}), so its "
                "residual would reach nothing; pick a layer at or before the last of them"
            )
        self._tower = module_at(base.model, family.patch_features)
        self._reset()

    def _reset(self) -> None:
        self._slots: int | None = None  # image slots per row (pixel_values' dimension 1)
        self._tiles: torch.Tensor | None = None  # (B, N, T): each slot's real tiles
        self._patches: torch.Tensor | None = None
        # Set by the guidance hook, consumed by the first module at or after the layer.
        self._pending: tuple[torch.Tensor, list[int]] | None = None
        self._residual: torch.Tensor | None = None

    # --------------------------------------------------------------------------- captures
    def _capture_inputs(self, module: nn.Module, args: Any, kwargs: dict[str, Any]) -> None:
        pixels = kwargs.get("pixel_values")
        if pixels is not None:  # a pass that encodes images (not a decode step)
            self._slots = int(pixels.shape[1])
            self._tiles = kwargs.get("aspect_ratio_mask")  # Mllama; IDEFICS has no tiles

    def _capture_patches(self, module: nn.Module, args: Any, output: Any) -> None:
        self._patches = output[0] if isinstance(output, tuple) else output.last_hidden_state

    def _guidance(self, hidden: torch.Tensor, visual: VisualPositions) -> torch.Tensor:
        rows, _ = images_of(visual)
        counts = [rows.count(row) for row in range(hidden.shape[0])]
        guidance = hidden[torch.arange(hidden.shape[0], device=hidden.device), visual.last]
        self._pending = (guidance, counts) if rows else None
        self._residual = None
        return hidden

    def _states_hook(self, index: int) -> Any:
        def hook(module: nn.Module, args: Any, kwargs: dict[str, Any]) -> Any:
            states = kwargs.get(self._arg)
            if states is None or index < self.layer:  # Mllama's decode steps: cached K/V
                return None
            if self._pending is not None:
                self._residual = self._compute(states, *self._pending)
                self._pending = None
            if self._residual is None:
                return None
            if self._residual.shape != states.shape:
                raise VPGCError(
                    f"image states of shape {tuple(states.shape)}, but the residual computed "
                    f"for this pass has {tuple(self._residual.shape)}"
                )
            return args, {**kwargs, self._arg: states + self._residual.to(states.dtype)}

        return hook

    # ---------------------------------------------------------------------------- residual
    def _compute(
        self, states: torch.Tensor, guidance: torch.Tensor, counts: list[int]
    ) -> torch.Tensor:
        patches, self._patches = self._patches, None
        if patches is None or self._slots is None:
            raise VPGCError(
                "the batch has images but no patch features were captured (the vision tower "
                "did not run in this pass: run the model through VPGCLVLM)"
            )
        batch, slots, device = len(counts), self._slots, states.device
        if max(counts) > slots:
            raise VPGCError(f"rows of {counts} images, but the pass encoded {slots} per row")
        tiles = self._tiles
        if tiles is None:
            tiles = torch.ones(batch, slots, 1, dtype=torch.bool, device=device)
        tiles = tiles.to(device=device, dtype=torch.bool)
        # (B, N, L, Ds) and (B, N, M, d): every slot's states and patches, tiles in order.
        slot_states = states.reshape(batch, slots, -1, states.shape[-1])
        slot_patches = patches.reshape(batch, slots, -1, patches.shape[-1]).to(device)
        per_tile_states = slot_states.shape[2] // tiles.shape[-1]
        per_tile_patches = slot_patches.shape[2] // tiles.shape[-1]
        state_mask = tiles.repeat_interleave(per_tile_states, dim=-1)
        patch_mask = tiles.repeat_interleave(per_tile_patches, dim=-1)
        # The real images: slot i < count of row b.
        rows = torch.tensor([b for b, n in enumerate(counts) for _ in range(n)], device=device)
        images = torch.tensor([i for n in counts for i in range(n)], device=device)
        residual = self.adapter(
            slot_states[rows, images],
            state_mask[rows, images],
            slot_patches[rows, images],
            patch_mask[rows, images],
            guidance[rows],
        )
        full = slot_states.new_zeros(slot_states.shape, dtype=residual.dtype)
        full = full.index_put((rows, images), residual)
        return full.reshape(states.shape)

    # ------------------------------------------------------------------------------ hooks
    @contextmanager
    def active(self) -> Iterator[None]:
        """Inside the block the base's passes run with the adapter."""
        with ExitStack() as stack:
            handles = [
                self.base.model.register_forward_pre_hook(self._capture_inputs, with_kwargs=True),
                self._tower.register_forward_hook(self._capture_patches),
            ]
            for index, module in self._modules:
                handles.append(
                    module.register_forward_pre_hook(self._states_hook(index), with_kwargs=True)
                )
            for handle in handles:
                stack.callback(handle.remove)
            stack.enter_context(self.base.layer_hook(self.layer - 1, self._guidance))
            self._reset()
            try:
                yield
            finally:
                self._reset()

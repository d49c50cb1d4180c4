"""Decoder-layer hooks that see where every image's visual tokens are: VPG-C's insertion point.

A ``LayerHook`` rewrites the output of one decoder layer of the language model,
``hook(hidden, visual) -> hidden`` with ``hidden`` of shape ``(B, T, D)``, where ``visual``
(``VisualPositions``) tells it, for the padded batch in flight, which tokens are visual
(``mask``), which positions belong to which image (``spans``, one per image in prompt order)
and where each row's prompt ends (``last``, whose hidden state is the guidance VPG-C reads).

``LayerHooks`` registers such hooks on a model and feeds them the positions of the batch that
``HFLVLM`` is running. A hook acts on every pass that sees the whole sequence: the one forward
of scoring, and the prefill of generation. Decode steps are skipped: with a KV cache their
input is the newest token alone, and the cache already holds the prompt states the hook
rewrote during prefill. A step is recognised as prefill when its hidden states are as long as
the batch's padded sequence (decode steps are one token long).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from drum.lvlm.families import USUAL_DECODER_LAYERS, module_at, served_family


@dataclass(frozen=True, eq=False)
class VisualPositions:
    """Where the visual tokens of a padded batch are.

    Attributes:
        mask: ``(B, T)`` bool, true exactly at the image tokens.
        spans: per row, per image of the prompt in order of appearance, the ``[start, end)``
            positions of its tokens in the padded sequence. Images whose tokens are adjacent
            (no text between them) still get one span each, split by the number of tokens
            the processor gave each image. An image the processor tiles (Idefics3 with image
            splitting) spans from its first to its last image token, so its span also holds
            the tile separators between the tiles; ``mask`` within the span picks the visual
            tokens alone.
        last: ``(B,)`` long, the position of each row's last prompt token (the end of the
            rendered prompt, generation prompt included): ``len(prompt) - 1`` under the right
            padding of scoring, ``T - 1`` under the left padding of generation. Its hidden state
            summarises the instruction: ``hidden[torch.arange(B), visual.last]``.
    """

    mask: torch.Tensor
    spans: list[list[tuple[int, int]]]
    last: torch.Tensor

    @classmethod
    def of_rows(
        cls,
        ids: Sequence[Sequence[int]],
        starts: Sequence[int],
        prompt_lengths: Sequence[int],
        length: int,
        image_token_id: int | None,
        tokens_per_image: Sequence[Sequence[int]],
        device: torch.device | str = "cpu",
    ) -> VisualPositions:
        """The positions of a padded batch built from its unpadded rows.

        Args:
            ids: each row's unpadded token ids (prompt, then any answer tokens).
            starts: where each row begins in the padded sequence (its left padding).
            prompt_lengths: each row's prompt length in tokens.
            length: the padded sequence length ``T``.
            image_token_id: the image placeholder token (``None``: the model has none).
            tokens_per_image: per row, per image in order, its number of image tokens.
        """
        mask = torch.zeros(len(ids), length, dtype=torch.bool)
        spans: list[list[tuple[int, int]]] = []
        for row, (row_ids, start, counts) in enumerate(
            zip(ids, starts, tokens_per_image, strict=True)
        ):
            positions = [start + i for i, token in enumerate(row_ids) if token == image_token_id]
            if len(positions) != sum(counts):
                raise ValueError(
                    f"row {row}: {len(positions)} image tokens but the processor gave its "
                    f"images {list(counts)} tokens"
                )
            mask[row, positions] = True
            row_spans, first = [], 0
            for count in counts:
                row_spans.append((positions[first], positions[first + count - 1] + 1))
                first += count
            spans.append(row_spans)
        last = torch.tensor(
            [start + n - 1 for start, n in zip(starts, prompt_lengths, strict=True)],
            dtype=torch.long,
        )
        return cls(mask=mask.to(device), spans=spans, last=last.to(device))


LayerHook = Callable[[torch.Tensor, VisualPositions], torch.Tensor]


def decoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The language model's decoder layers, where its family's record says
    (``drum.lvlm.families``); for a ``model_type`` without a record, the first of the usual
    paths that holds a ``ModuleList``."""
    family = served_family(str(model.config.model_type))
    for path in (family.decoder_layers,) if family.recorded else USUAL_DECODER_LAYERS:
        try:
            layers = module_at(model, path)
        except AttributeError:
            continue
        if isinstance(layers, torch.nn.ModuleList):
            return layers
    raise ValueError(f"cannot find the decoder layers of {type(model).__name__}")


class LayerHooks:
    """Layer hooks on ``model`` and the visual positions of the batch they act on.

    ``hook(layer_index, fn)`` installs ``fn`` for the duration of a ``with`` block;
    ``batch(visual)`` declares the positions of the passes run inside it (one scoring forward,
    or one ``generate`` call). A hooked layer that runs outside any ``batch`` is an error: its
    hook would have no positions to act on.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self._visual: VisualPositions | None = None
        self._installed = 0

    @property
    def active(self) -> bool:
        """Whether any hook is installed (callers compute positions only then)."""
        return self._installed > 0

    @contextmanager
    def hook(self, layer_index: int, hook: LayerHook) -> Iterator[None]:
        """Let ``hook`` rewrite decoder layer ``layer_index``'s output inside the block."""
        layer = decoder_layers(self.model)[layer_index]

        def forward_hook(module: torch.nn.Module, args: Any, output: Any) -> Any:
            hidden = output[0] if isinstance(output, tuple) else output  # tuples before v5
            visual = self._visual
            if visual is None:
                raise RuntimeError(
                    "a hooked decoder layer ran without visual positions (run the model "
                    "through HFLVLM.score / generate / forward)"
                )
            if hidden.shape[1] != visual.mask.shape[1]:
                return output  # a decode step (see the module docstring)
            new = hook(hidden, visual)
            return (new, *output[1:]) if isinstance(output, tuple) else new

        handle = layer.register_forward_hook(forward_hook)
        self._installed += 1
        try:
            yield
        finally:
            handle.remove()
            self._installed -= 1

    @contextmanager
    def batch(self, visual: VisualPositions | None) -> Iterator[None]:
        """Run the block's passes with ``visual`` as the hooks' positions (``None``: no hook is
        installed, nothing to feed)."""
        previous, self._visual = self._visual, visual
        try:
            yield
        finally:
            self._visual = previous

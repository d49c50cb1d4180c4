"""Skip the last decoder layer's MLP where no logit is read.

Scoring reads logits only at the answer positions (``logits_to_keep``). Every decoder layer
but the last must still run at every position, since later layers attend to all of them. The
last layer's output, though, feeds nothing but the final norm and the LM head, both applied
position by position: its MLP, about three quarters of the layer's multiply-adds, is needed
only at the kept positions. ``only_at_positions`` runs a module on those positions alone and
puts zeros elsewhere; the logits at the kept positions are what the whole pass gives them up
to float rounding (``tests/lvlm/test_hf_fast_scoring.py``), the hidden states elsewhere are
not (so nothing that reads them, a layer hook or ``output_hidden_states``, may run inside).

With a one-token answer and a 30-token prompt (the built-in LVLM's feedback) this drops the
MLP of 29 of 30 positions in one of four layers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from drum.lvlm.hooks import decoder_layers


def last_layer_mlp(model: torch.nn.Module) -> torch.nn.Module | None:
    """The MLP of the language model's last decoder layer (``.mlp`` in every ``transformers``
    decoder layer we run), or None where the architecture keeps it elsewhere."""
    try:
        layer = decoder_layers(model)[-1]
    except (ValueError, IndexError):
        return None
    mlp = getattr(layer, "mlp", None)
    return mlp if isinstance(mlp, torch.nn.Module) else None


@contextmanager
def only_at_positions(module: torch.nn.Module, positions: torch.Tensor) -> Iterator[None]:
    """Inside the block, ``module(hidden)`` with ``hidden`` of shape ``(B, T, D)`` runs on
    ``hidden[:, positions]`` alone; its output is scattered back to ``(B, T, D')`` with zeros
    at the other positions. For position-wise modules whose output at other positions nobody
    reads (see the module docstring)."""
    shapes: list[torch.Size] = []

    def narrow(_: torch.nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        hidden = args[0]
        shapes.append(hidden.shape)
        return (hidden[:, positions], *args[1:])

    def widen(_: torch.nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
        batch, length = shapes.pop()[:2]
        full = output.new_zeros(batch, length, output.shape[-1])
        full[:, positions] = output
        return full

    handles = [module.register_forward_pre_hook(narrow), module.register_forward_hook(widen)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()

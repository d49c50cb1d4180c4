"""The learning-rate schedule, optimiser and update step every trainer uses."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, floor: float = 0.1) -> float:
    """LR multiplier: linear warm-up over ``warmup_steps``, then cosine decay to ``floor``::

    f(s) = (s + 1) / W                                      for s < W
    f(s) = floor + (1 - floor) (1 + cos(pi p)) / 2,  p = min(1, (s - W) / max(1, T - W))
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return floor + (1.0 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def adamw_warmup_cosine(
    parameters: list[torch.nn.Parameter],
    lr: float,
    weight_decay: float,
    total_steps: int,
    warmup_steps: int,
    betas: tuple[float, float] = (0.9, 0.98),
) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """Every trainer's optimiser and schedule: AdamW (``betas``; the built-in models' 0.9,
    0.98 by default) under ``warmup_cosine`` over ``total_steps`` (one scheduler step per
    update)."""
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay, betas=betas)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine(s, total_steps, warmup_steps)
    )
    return optimizer, scheduler


def clipped_step(
    loss: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    parameters: Iterable[torch.nn.Parameter],
    max_norm: float = 1.0,
) -> None:
    """One update of every built-in trainer: clear the gradients, back-propagate ``loss``,
    clip the gradient norm of ``parameters`` to ``max_norm``, step the optimiser, then the
    schedule."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(parameters, max_norm)
    optimizer.step()
    scheduler.step()

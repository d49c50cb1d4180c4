"""The learning-rate schedule every built-in trainer uses."""

from __future__ import annotations

import math


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, floor: float = 0.1) -> float:
    """LR multiplier: linear warm-up over ``warmup_steps``, then cosine decay to ``floor``::

    f(s) = (s + 1) / W                                      for s < W
    f(s) = floor + (1 - floor) (1 + cos(pi p)) / 2,  p = min(1, (s - W) / max(1, T - W))
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return floor + (1.0 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

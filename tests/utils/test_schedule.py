"""The shared warm-up + cosine learning-rate schedule."""

from __future__ import annotations

import pytest
import torch

from drum.utils.schedule import adamw_warmup_cosine, warmup_cosine


def test_warmup_rises_linearly_to_the_peak() -> None:
    assert [warmup_cosine(s, 100, 4) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]


def test_cosine_decays_from_the_peak_to_the_floor_and_stays() -> None:
    assert warmup_cosine(10, 110, 10) == pytest.approx(1.0)
    assert warmup_cosine(60, 110, 10) == pytest.approx(0.55)
    assert warmup_cosine(110, 110, 10) == pytest.approx(0.1)
    assert warmup_cosine(500, 110, 10) == pytest.approx(0.1)
    assert warmup_cosine(110, 110, 10, floor=0.0) == pytest.approx(0.0)


def test_one_builder_serves_both_optimisers() -> None:
    """The built-in models' AdamW (betas 0.9, 0.98) and the retriever's (AdamW's defaults)."""
    parameters = [torch.nn.Parameter(torch.zeros(2))]
    optimizer, scheduler = adamw_warmup_cosine(parameters, 0.1, 0.0, 10, 2)
    assert optimizer.defaults["betas"] == (0.9, 0.98)
    assert scheduler.get_last_lr() == [0.1 * warmup_cosine(0, 10, 2)]
    optimizer, _ = adamw_warmup_cosine(parameters, 0.1, 0.0, 10, 2, betas=(0.9, 0.999))
    assert optimizer.defaults["betas"] == torch.optim.AdamW(parameters).defaults["betas"]

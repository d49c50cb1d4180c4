"""The shared warm-up + cosine learning-rate schedule."""

from __future__ import annotations

import pytest

from drum.utils.schedule import warmup_cosine


def test_warmup_rises_linearly_to_the_peak() -> None:
    assert [warmup_cosine(s, 100, 4) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]


def test_cosine_decays_from_the_peak_to_the_floor_and_stays() -> None:
    assert warmup_cosine(10, 110, 10) == pytest.approx(1.0)
    assert warmup_cosine(60, 110, 10) == pytest.approx(0.55)
    assert warmup_cosine(110, 110, 10) == pytest.approx(0.1)
    assert warmup_cosine(500, 110, 10) == pytest.approx(0.1)
    assert warmup_cosine(110, 110, 10, floor=0.0) == pytest.approx(0.0)

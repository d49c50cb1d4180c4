"""Ranked lists and UDR-style candidate sampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from drum.data.example import Example
from drum.feedback.scorer import QueryFeedback
from drum.finetune.lists import RankedList, ranked_lists, sample_positions


def _example(i: int) -> Example:
    return Example(f"e{i}", (Path(f"{i}.png"),), "q", ("a",), "vqa")


@pytest.mark.parametrize(("n", "k", "top"), [(30, 8, 2), (8, 8, 2), (10, 4, 1), (50, 8, 3)])
def test_sample_positions_keeps_best_and_worst(n: int, k: int, top: int) -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        positions = sample_positions(n, k, top, rng)
        assert len(positions) == k == len(set(positions))
        assert positions == sorted(positions)
        assert positions[0] == 0 and positions[-1] == n - 1
        # top - 1 more come from the head (positions 1 .. 2 * top - 1).
        head = [p for p in positions if 1 <= p < 2 * top]
        assert len(head) >= min(top - 1, 2 * top - 1)


def test_sample_positions_rejects_impossible_requests() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="cannot sample"):
        sample_positions(5, 8, 2, rng)
    with pytest.raises(ValueError, match="cannot sample"):
        sample_positions(20, 8, 8, rng)


def test_sample_positions_covers_the_middle() -> None:
    rng = np.random.default_rng(1)
    seen = {p for _ in range(200) for p in sample_positions(30, 8, 2, rng)}
    assert seen == set(range(30))


def test_ranked_lists_sort_by_feedback_keeping_ties_in_retrieval_order() -> None:
    pool = {f"e{i}": _example(i) for i in range(5)}
    feedback = [QueryFeedback("e0", ("e1", "e2", "e3", "e4"), (0.1, 0.5, 0.1, -1.0), -2.0)]
    (item,) = ranked_lists([pool["e0"]], feedback, pool)
    assert [c.id for c in item.candidates] == ["e2", "e1", "e3", "e4"]
    assert item.relevance == (0.5, 0.1, 0.1, -1.0)


def test_ranked_list_must_be_sorted() -> None:
    with pytest.raises(ValueError, match="sorted"):
        RankedList(_example(0), (_example(1), _example(2)), (0.0, 1.0))

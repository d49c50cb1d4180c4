"""Training lists: per query, its candidates ranked by the LVLM, and the per-step samples.

UDR's sampling (``KaiLv69/UDR``, ``DPR/dpr/data/biencoder_data.py``) shows each query a few of
its ``M`` scored candidates per step: some from the top of the LVLM's order (the best always
among them), one from the bottom, the rest from the middle, so the ranking loss sees both
easy and hard pairs while a step stays cheap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from drum.data.example import Example
from drum.feedback.scorer import QueryFeedback


@dataclass(frozen=True)
class RankedList:
    """One training query and its candidates, best first by ``relevance`` (higher = better)."""

    query: Example
    candidates: tuple[Example, ...]
    relevance: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.candidates) != len(self.relevance):
            raise ValueError("candidates and relevance must have the same length")
        if any(a < b for a, b in zip(self.relevance, self.relevance[1:], strict=False)):
            raise ValueError("a RankedList must be sorted by relevance, best first")


def ranked_lists(
    queries: Sequence[Example],
    feedback: Sequence[QueryFeedback],
    pool: Mapping[str, Example],
) -> list[RankedList]:
    """``RankedList`` per query from its feedback (ties keep the retrieval order)."""
    by_query = {item.query_id: item for item in feedback}
    lists = []
    for query in queries:
        item = by_query[query.id]
        order = item.ranked_order()
        lists.append(
            RankedList(
                query,
                tuple(pool[item.candidate_ids[i]] for i in order),
                tuple(item.scores[i] for i in order),
            )
        )
    return lists


def sample_positions(
    n_candidates: int, n_sampled: int, top: int, rng: np.random.Generator
) -> list[int]:
    """Positions (0 = best) of the candidates one step shows: position 0, ``top - 1`` more from
    the top ``2 * top``, the last one, and the rest uniformly from the middle; sorted."""
    if n_candidates < n_sampled or not 1 <= top < n_sampled:
        raise ValueError(
            f"cannot sample {n_sampled} of {n_candidates} candidates with {top} from the top"
        )
    chosen = {0, n_candidates - 1}
    head = np.arange(1, min(2 * top, n_candidates - 1))
    if top > 1 and len(head):
        chosen.update(int(i) for i in rng.choice(head, size=min(top - 1, len(head)), replace=False))
    middle = np.array([i for i in range(n_candidates) if i not in chosen])
    rest = n_sampled - len(chosen)
    if rest > 0:
        chosen.update(int(i) for i in rng.choice(middle, size=rest, replace=False))
    return sorted(chosen)

"""Ranked lists on the tiny world that the trainer tests share."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from drum.data.jsonl import read_examples
from drum.finetune.lists import RankedList


def answer_ranked_lists(world: Path, queries: int) -> list[RankedList]:
    """For each of the first ``queries`` VQA pool examples, 10 other pool candidates ranked by
    whether they share its answer (then by draw order)."""
    pool = read_examples(world / "vqa" / "pool.jsonl", verify_images=False)
    rng = np.random.default_rng(0)
    out = []
    for query in pool[:queries]:
        others = [e for e in pool if e.id != query.id]
        picked = [others[int(i)] for i in rng.choice(len(others), size=10, replace=False)]
        scored = sorted(
            ((float(c.answer == query.answer) - 0.01 * i, c) for i, c in enumerate(picked)),
            key=lambda pair: -pair[0],
        )
        out.append(RankedList(query, tuple(c for _, c in scored), tuple(s for s, _ in scored)))
    return out

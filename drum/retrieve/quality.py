"""Retrieval quality without an LVLM: do the chosen demonstrations reveal the query's answer?

In the built-in world a demonstration reveals a query's answer exactly when it shares the
query's canonical answer (the same nonsense word names the same question type and value), so
these figures bound what an ideal in-context learner can reach with the retrieved prompts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from drum.data.example import Example, require_answered
from drum.retrieve.retriever import Retrieval


def _check_answers(
    queries: Sequence[Example], retrievals: Sequence[Retrieval], pool: Mapping[str, Example]
) -> None:
    why = "answer hit rate and precision compare canonical answers"
    require_answered(queries, "queries", why)
    shown = {d: pool[d] for r in retrievals for d in r.demo_ids}
    require_answered(shown.values(), "retrieved demonstrations", why)


def answer_hit_rate(
    queries: Sequence[Example], retrievals: Sequence[Retrieval], pool: Mapping[str, Example]
) -> np.ndarray:
    """Per query, 1.0 if any demonstration's canonical answer equals the query's, else 0.0.

    ``hit@k = 1[ exists d in demos(q) : answer(d) = answer(q) ]``; a ``NoAnswersError`` if a
    query or a retrieved demonstration has no answers.
    """
    _check_answers(queries, retrievals, pool)
    return np.array(
        [
            float(any(pool[d].answer == q.answer for d in r.demo_ids))
            for q, r in zip(queries, retrievals, strict=True)
        ]
    )


def answer_precision(
    queries: Sequence[Example], retrievals: Sequence[Retrieval], pool: Mapping[str, Example]
) -> np.ndarray:
    """Per query, the fraction of demonstrations whose canonical answer equals the query's.

    ``precision@k = |{d in demos(q) : answer(d) = answer(q)}| / k`` (0 when k = 0); a
    ``NoAnswersError`` if a query or a retrieved demonstration has no answers.
    """
    _check_answers(queries, retrievals, pool)
    return np.array(
        [
            float(np.mean([pool[d].answer == q.answer for d in r.demo_ids])) if r.demo_ids else 0.0
            for q, r in zip(queries, retrievals, strict=True)
        ]
    )

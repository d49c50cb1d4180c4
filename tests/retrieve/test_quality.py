"""Retrieval quality figures on hand-made cases."""

from __future__ import annotations

import numpy as np

from drum.data.example import Example
from drum.retrieve.quality import answer_hit_rate, answer_precision
from drum.retrieve.retriever import Retrieval


def _example(id_: str, answer: str) -> Example:
    return Example(id_, (), "q", (answer,), "vqa")


def test_hit_rate_and_precision_by_hand() -> None:
    pool = {e.id: e for e in [_example("a", "x"), _example("b", "y"), _example("c", "x")]}
    queries = [_example("q1", "x"), _example("q2", "z"), _example("q3", "y")]
    retrievals = [
        Retrieval("q1", ("a", "b", "c"), (0, 0, 0)),
        Retrieval("q2", ("a", "b"), (0, 0)),
        Retrieval("q3", (), ()),
    ]
    np.testing.assert_allclose(answer_hit_rate(queries, retrievals, pool), [1.0, 0.0, 0.0])
    np.testing.assert_allclose(answer_precision(queries, retrievals, pool), [2 / 3, 0.0, 0.0])


def test_queries_or_demonstrations_without_answers_are_a_clear_error() -> None:
    import pytest

    from drum.data.example import NoAnswersError

    unanswered = Example("u", (), "q", (), "vqa")
    pool = {"a": _example("a", "x"), "u": unanswered}
    for function in (answer_hit_rate, answer_precision):
        with pytest.raises(NoAnswersError, match=r"1 of 1 queries have no answers.*'u'"):
            function([unanswered], [Retrieval("u", ("a",), (0,))], pool)
        with pytest.raises(NoAnswersError, match="1 of 2 retrieved demonstrations"):
            function([_example("q", "x")], [Retrieval("q", ("a", "u"), (0, 0))], pool)

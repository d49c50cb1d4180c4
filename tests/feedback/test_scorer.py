"""``score_feedback`` on a tiny random LLaVA loaded by path through ``HFLVLM``.

Checked against scores computed by hand (one prompt at a time through ``LVLM.score``), and
for the cache's promises: a repeated run scores nothing, an interrupted or partial run resumes
by scoring exactly the missing prompts with the same results, duplicates are scored once. A
``drum.testing.SpyLVLM`` around the LVLM records every prompt that reaches ``score``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import pytest

from drum.data import read_examples
from drum.data.example import Example
from drum.feedback import FeedbackCache, FeedbackConfig, QueryFeedback, score_feedback
from drum.lvlm.hf import HFLVLM
from drum.lvlm.prompt import PromptTemplate, build_prompt
from drum.testing import SpyLVLM

TOL = 1e-5


@pytest.fixture(scope="module")
def lvlm(tiny_llava_dir: Path) -> HFLVLM:
    return HFLVLM(tiny_llava_dir)


@pytest.fixture(scope="module")
def world(tiny_world: Path) -> tuple[list[Example], dict[str, list[Example]]]:
    """Four queries with 3 candidates each, from the pool. Two queries get two-word answers,
    so per-token means and sums differ (a mean/sum mix-up would show)."""
    pool = read_examples(tiny_world / "vqa" / "pool.jsonl")
    queries = pool[:4]
    queries[1] = dataclasses.replace(queries[1], answers=(f"{pool[1].answer} {pool[2].answer}",))
    queries[3] = dataclasses.replace(queries[3], answers=(f"{pool[3].answer} {pool[0].answer}",))
    candidates = {q.id: pool[10 + 3 * i : 13 + 3 * i] for i, q in enumerate(queries)}
    return queries, candidates


def _prompts_of(queries: Sequence[Example], candidates: dict[str, list[Example]]) -> set:
    """Every distinct (prompt, answer) a feedback run over ``queries`` has to score."""
    return {
        (build_prompt(demos, q), q.answer)
        for q in queries
        for demos in [[], *([c] for c in candidates[q.id])]
    }


def _assert_feedback_close(got: list[QueryFeedback], expected: list[QueryFeedback]) -> None:
    assert [f.query_id for f in got] == [f.query_id for f in expected]
    for g, e in zip(got, expected, strict=True):
        assert g.candidate_ids == e.candidate_ids
        assert g.zero_shot == pytest.approx(e.zero_shot, abs=TOL)
        assert g.scores == pytest.approx(e.scores, abs=TOL)


@pytest.mark.parametrize("length_normalised", [True, False])
def test_scores_equal_by_hand(
    lvlm: HFLVLM, world: tuple[list[Example], dict[str, list[Example]]], length_normalised: bool
) -> None:
    queries, candidates = world
    config = FeedbackConfig(batch_size=5, length_normalised=length_normalised)
    feedback = score_feedback(lvlm, queries, candidates, config=config, progress=False)

    def value(demos: list[Example], query: Example) -> float:
        # One prompt per call: nothing shared with the batched run (padding, batch mates).
        (result,) = lvlm.score([build_prompt(demos, query)], [query.answer], batch_size=1)
        return result.mean if length_normalised else result.sum

    assert [f.query_id for f in feedback] == [q.id for q in queries]
    for query, got in zip(queries, feedback, strict=True):
        zero = value([], query)
        assert got.candidate_ids == tuple(c.id for c in candidates[query.id])
        assert got.zero_shot == pytest.approx(zero, abs=TOL)
        expected = [value([c], query) - zero for c in candidates[query.id]]
        assert got.scores == pytest.approx(expected, abs=TOL)
        # A random model still tells candidates apart; equal scores would hide ordering bugs.
        assert len({round(s, 4) for s in got.scores}) == len(got.scores)


def test_ranked_order() -> None:
    feedback = QueryFeedback("q", ("a", "b", "c", "d", "e"), (0.1, 0.5, -0.2, 0.5, 0.3), -1.0)
    # Most helpful first; the tie (b, d) keeps retrieval order.
    assert feedback.ranked_order() == [1, 3, 4, 0, 2]
    assert QueryFeedback("q", (), (), 0.0).ranked_order() == []


def test_ranked_order_of_real_scores(
    lvlm: HFLVLM, world: tuple[list[Example], dict[str, list[Example]]]
) -> None:
    queries, candidates = world
    for f in score_feedback(lvlm, queries, candidates, progress=False):
        ranked = f.ranked_order()
        assert sorted(ranked) == list(range(len(f.candidate_ids)))
        assert [f.scores[i] for i in ranked] == sorted(f.scores, reverse=True)


def test_second_run_with_the_same_cache_scores_nothing(
    lvlm: HFLVLM, world: tuple[list[Example], dict[str, list[Example]]], tmp_path: Path
) -> None:
    queries, candidates = world
    path = tmp_path / "feedback.jsonl"
    cache = FeedbackCache(path)
    first_lvlm = SpyLVLM(lvlm)
    first = score_feedback(first_lvlm, queries, candidates, cache, progress=False)
    assert len(first_lvlm.scored) == len(_prompts_of(queries, candidates)) == 4 * (1 + 3)
    assert len(cache) == len(first_lvlm.scored)

    for again in (cache, FeedbackCache(path)):  # same object, and reloaded from disk
        counting = SpyLVLM(lvlm)
        second = score_feedback(counting, queries, candidates, again, progress=False)
        assert counting.scored == []
        assert second == first  # cached values are the very same numbers

    # Another model (fingerprint) must not reuse these scores.
    other = SpyLVLM(lvlm, fingerprint="other-" + lvlm.fingerprint)
    score_feedback(other, queries, candidates, FeedbackCache(path), progress=False)
    assert len(other.scored) == len(first_lvlm.scored)


def test_cached_scores_are_not_reused_under_another_template(
    lvlm: HFLVLM, world: tuple[list[Example], dict[str, list[Example]]], tmp_path: Path
) -> None:
    # The template rewrites every prompt, so its scores are other scores.
    queries, candidates = world
    path = tmp_path / "feedback.jsonl"
    doubled = PromptTemplate(user="{text} {text}")
    plain = score_feedback(lvlm, queries, candidates, FeedbackCache(path), progress=False)

    counting = SpyLVLM(lvlm)
    other = score_feedback(
        counting, queries, candidates, FeedbackCache(path), template=doubled, progress=False
    )
    assert len(counting.scored) == 4 * (1 + 3)
    assert all(prompt.query.text.count("?") == 2 for prompt, _ in counting.scored)
    assert other != plain
    _assert_feedback_close(
        other, score_feedback(lvlm, queries, candidates, None, None, doubled, False)
    )

    for template, expected in ((doubled, other), (None, plain), (PromptTemplate(), plain)):
        again = SpyLVLM(lvlm)
        got = score_feedback(
            again, queries, candidates, FeedbackCache(path), template=template, progress=False
        )
        assert again.scored == [] and got == expected


def test_resume_scores_only_the_missing_prompts(
    lvlm: HFLVLM, world: tuple[list[Example], dict[str, list[Example]]], tmp_path: Path
) -> None:
    queries, candidates = world
    scratch = score_feedback(lvlm, queries, candidates, progress=False)

    path = tmp_path / "feedback.jsonl"
    half = SpyLVLM(lvlm)
    score_feedback(half, queries[:2], candidates, FeedbackCache(path), progress=False)
    assert set(half.scored) == _prompts_of(queries[:2], candidates)

    rest = SpyLVLM(lvlm)
    resumed = score_feedback(rest, queries, candidates, FeedbackCache(path), progress=False)
    assert len(rest.scored) == len(set(rest.scored))
    assert set(rest.scored) == _prompts_of(queries[2:], candidates)
    _assert_feedback_close(resumed, scratch)


def test_resume_after_a_crash_mid_run(
    lvlm: HFLVLM, world: tuple[list[Example], dict[str, list[Example]]], tmp_path: Path
) -> None:
    queries, candidates = world
    scratch = score_feedback(lvlm, queries, candidates, progress=False)
    path = tmp_path / "feedback.jsonl"
    config = FeedbackConfig(batch_size=2, flush_every=5)

    # Killed during its third chunk: the first two chunks (10 prompts) were flushed to disk.
    killed = SpyLVLM(lvlm, fail_on_call=3)
    with pytest.raises(RuntimeError, match="killed"):
        score_feedback(killed, queries, candidates, FeedbackCache(path), config, progress=False)
    assert len(killed.scored) == 10 and len(FeedbackCache(path)) == 10

    rest = SpyLVLM(lvlm)
    resumed = score_feedback(rest, queries, candidates, FeedbackCache(path), config, progress=False)
    assert len(rest.scored) == 4 * (1 + 3) - 10
    assert set(rest.scored).isdisjoint(killed.scored)
    assert set(rest.scored) | set(killed.scored) == _prompts_of(queries, candidates)
    _assert_feedback_close(resumed, scratch)


def test_duplicates_are_scored_once(
    lvlm: HFLVLM, world: tuple[list[Example], dict[str, list[Example]]]
) -> None:
    queries, pools = world
    q0, q1 = queries[0], queries[1]
    c1, c2 = pools[q0.id][:2]
    candidates = {q0.id: [c1, c2, c1], q1.id: [c1]}

    counting = SpyLVLM(lvlm)
    feedback = score_feedback(counting, [q0, q0, q1], candidates, progress=False)
    # q0: zero-shot, c1, c2; q1: zero-shot, c1 (the same demo for another query is another
    # prompt).
    assert len(counting.scored) == 5
    assert set(counting.scored) == _prompts_of([q0, q1], {q0.id: [c1, c2], q1.id: [c1]})

    assert [f.query_id for f in feedback] == [q0.id, q0.id, q1.id]
    assert feedback[0] == feedback[1]
    assert feedback[0].candidate_ids == (c1.id, c2.id, c1.id)
    assert feedback[0].scores[0] == feedback[0].scores[2]
    reference = score_feedback(lvlm, [q0, q1], {q0.id: [c1, c2], q1.id: [c1]}, progress=False)
    assert feedback[0].scores[:2] == pytest.approx(reference[0].scores, abs=TOL)
    assert feedback[2].scores == pytest.approx(reference[1].scores, abs=TOL)


def test_query_without_candidates_is_a_clear_error(
    lvlm: HFLVLM, world: tuple[list[Example], dict[str, list[Example]]], tmp_path: Path
) -> None:
    queries, candidates = world
    missing = queries[-1]
    partial = {k: v for k, v in candidates.items() if k != missing.id}
    counting = SpyLVLM(lvlm)
    cache = FeedbackCache(tmp_path / "feedback.jsonl")
    with pytest.raises(KeyError, match=f"no candidates given for query '{missing.id}'"):
        score_feedback(counting, queries, partial, cache, progress=False)
    # Checked before any work: nothing scored, nothing written.
    assert counting.scored == [] and len(cache) == 0


def test_query_with_no_candidates_gets_an_empty_entry(
    lvlm: HFLVLM, world: tuple[list[Example], dict[str, list[Example]]]
) -> None:
    # An empty list is not a missing entry: only the zero-shot term is scored.
    queries, _ = world
    counting = SpyLVLM(lvlm)
    (feedback,) = score_feedback(counting, queries[:1], {queries[0].id: []}, progress=False)
    assert feedback.candidate_ids == () and feedback.scores == ()
    assert len(counting.scored) == 1


def test_queries_or_candidates_without_answers_fail_before_any_scoring(
    world: tuple[list[Example], dict[str, list[Example]]],
) -> None:
    from drum.data import NoAnswersError
    from drum.testing import FakeLVLM

    queries, candidates = world
    lvlm = FakeLVLM("first_demo")
    answerless = [dataclasses.replace(queries[0], answers=()), *queries[1:]]
    with pytest.raises(NoAnswersError, match=r"1 of 4 queries have no answers"):
        score_feedback(lvlm, answerless, candidates, progress=False)
    shown = {**candidates, queries[0].id: [dataclasses.replace(candidates[queries[0].id][0],
                                                               answers=())]}  # fmt: skip
    with pytest.raises(NoAnswersError, match=r"candidates have no answers"):
        score_feedback(lvlm, queries, shown, progress=False)
    assert lvlm.calls == 0


def test_prompts_of_one_demonstration_are_scored_together(
    lvlm: HFLVLM, tiny_world: Path, tmp_path: Path
) -> None:
    # Mining's shape: neighbouring queries retrieve overlapping candidates.
    pool = read_examples(tiny_world / "vqa" / "pool.jsonl")
    queries = pool[:5]
    candidates = {q.id: pool[10 + i : 13 + i] for i, q in enumerate(queries)}
    spy = SpyLVLM(lvlm)
    config = FeedbackConfig(batch_size=2, flush_every=64)
    path = tmp_path / "feedback.jsonl"
    got = score_feedback(spy, queries, candidates, FeedbackCache(path), config, progress=False)
    assert spy.calls == 1
    demos = [prompt.demos for prompt, _ in spy.scored]
    # Each demonstration's prompts (and the zero-shot ones) form one run, in first-appearance
    # order of the candidates.
    runs = [d for i, d in enumerate(demos) if i == 0 or demos[i - 1] != d]
    assert len(runs) == len(set(demos)) == 1 + 7
    assert runs[0] == () and len(spy.scored) == len(_prompts_of(queries, candidates))
    # The same scores as a query-major, one-prompt-at-a-time run.
    expected = []
    for query in queries:
        [zero] = lvlm.score([build_prompt([], query)], [query.answer])
        ones = [
            lvlm.score([build_prompt([c], query)], [query.answer])[0] for c in candidates[query.id]
        ]
        expected.append(
            QueryFeedback(
                query.id,
                tuple(c.id for c in candidates[query.id]),
                tuple(one.mean - zero.mean for one in ones),
                zero.mean,
            )
        )
    _assert_feedback_close(got, expected)
    # The cache holds every prompt once, in the order scored (one run per candidate).
    cached = [key[2] for key, _ in FeedbackCache(path).items()]
    assert len(cached) == len(spy.scored)
    assert len([c for i, c in enumerate(cached) if i == 0 or cached[i - 1] != c]) == 8

"""Per-query records of the ICL evaluation (icl_queries.jsonl)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drum.builtin.world.tasks import world_tasks
from drum.data.jsonl import read_examples
from drum.embed.example_embeddings import ExampleEmbeddings
from drum.embed.hf import HFDualEncoder
from drum.eval.icl import (
    RESULTS_FILE,
    ZERO_SHOT,
    FeedbackLookup,
    ICLEvalConfig,
    evaluate_icl,
    run_icl_eval,
)
from drum.eval.records import QUERIES_FILE, QUERY_RECORD_FIELDS, read_query_records
from drum.feedback.cache import FeedbackCache, FeedbackRecord
from drum.lvlm.base import ScoreResult
from drum.retrieve.retriever import DemonstrationRetriever
from drum.retrieve.strategies import RetrievalConfig
from drum.testing import FakeLVLM


def _lvlm() -> FakeLVLM:
    return FakeLVLM("first_demo", fingerprint="first-demo-dummy", no_demo_reply="nothing")


@pytest.fixture(scope="module")
def clip(tiny_clip_dir: Path) -> HFDualEncoder:
    return HFDualEncoder(tiny_clip_dir)


def _key(row_or_record: dict) -> tuple:
    r = row_or_record
    return r["task"], r["strategy"], r["shots"], r["seed"]


@pytest.mark.parametrize(
    ("task_name", "corpus_ci"),
    [
        ("vqa", "rescore"),
        ("classification", "rescore"),
        ("caption", "rescore"),
        ("caption", "fixed_statistics"),
    ],
)
def test_the_mean_of_per_query_scores_is_the_row_value(
    tiny_world: Path, task_name: str, corpus_ci: str
) -> None:
    task = world_tasks(tiny_world)[task_name]
    config = ICLEvalConfig(
        strategies=("random", "fixed"),
        shots=(0, 1, 2),
        seeds=(0, 1),
        max_queries=8,
        corpus_bootstrap_resamples=3,
        corpus_ci=corpus_ci,
    )
    records: list[dict] = []
    rows = evaluate_icl(task, _lvlm(), config, progress=False, records=records)
    assert len(records) == len(rows) * 8
    for row in rows:
        mine = [r for r in records if _key(r) == _key(row)]
        assert len(mine) == 8
        for metric, summary in row["metric"].items():
            scores = [r["scores"][metric] for r in mine]
            if metric == "bleu4":  # corpus BLEU pools n-gram counts: not a mean of per-image
                continue
            assert sum(scores) / len(scores) == pytest.approx(summary["value"], abs=1e-12)
        assert all(r["score"] == r["scores"][task.metrics[0]] for r in mine)


def test_records_hold_demos_in_prompt_order_with_their_retrieval_scores(
    tiny_world: Path, clip: HFDualEncoder
) -> None:
    task = world_tasks(tiny_world)["vqa"]
    config = ICLEvalConfig(strategies=("random", "concat"), shots=(0, 1, 3), max_queries=6)
    records: list[dict] = []
    evaluate_icl(task, _lvlm(), config, {"default": clip}, progress=False, records=records)
    pool, queries = read_examples(task.pool), read_examples(task.queries)[:6]
    retriever = DemonstrationRetriever(
        ExampleEmbeddings.compute(pool, clip), RetrievalConfig("concat", k=3)
    )
    expected = {
        r.query_id: r for r in retriever.retrieve(queries, ExampleEmbeddings.compute(queries, clip))
    }
    answers = {q.id: list(q.answers) for q in queries}
    by_id = {e.id: e for e in pool}
    for record in records:
        assert set(record) == set(QUERY_RECORD_FIELDS)
        assert record["references"] == answers[record["query_id"]]
        assert len(record["demo_ids"]) == record["shots"]
        assert record["feedback"] == [None] * record["shots"]
        if record["strategy"] == "concat":
            want = expected[record["query_id"]]
            k = record["shots"]
            assert record["demo_ids"] == list(want.demo_ids[-k:])
            assert record["similarity"] == pytest.approx(list(want.scores[-k:]))
            # similar_last: the best match is shown last.
            assert record["similarity"] == sorted(record["similarity"])
            # The fake LVLM answers with the first demonstration's answer.
            assert record["prediction"] == by_id[record["demo_ids"][0]].answer
        else:
            assert record["similarity"] is None
    zero = [r for r in records if r["strategy"] == ZERO_SHOT]
    assert len(zero) == 6 and all(
        r["demo_ids"] == [] and r["prediction"] == "nothing" for r in zero
    )


def test_feedback_comes_from_the_cache_only_where_both_terms_are_cached(
    tiny_world: Path, tmp_path: Path
) -> None:
    task = world_tasks(tiny_world)["vqa"]
    lvlm = _lvlm()
    config = ICLEvalConfig(strategies=("fixed",), shots=(2,), max_queries=3)
    probe: list[dict] = []
    evaluate_icl(task, lvlm, config, progress=False, records=probe)
    query = read_examples(task.queries)[0]
    first, second = probe[0]["demo_ids"]
    cache = FeedbackCache(tmp_path / "feedback.jsonl")
    model = lvlm.fingerprint  # cache_model_key with the default template
    cache.add(
        [
            FeedbackRecord((model, query.id, None, query.answer), ScoreResult(-6.0, -2.0, 3)),
            FeedbackRecord((model, query.id, first, query.answer), ScoreResult(-3.0, -1.0, 3)),
            # No zero-shot term for the second query: its demo scores stay unknown.
            FeedbackRecord((model, probe[1]["query_id"], first, "x"), ScoreResult(-1, -1, 1)),
        ]
    )
    records: list[dict] = []
    evaluate_icl(
        task, lvlm, config, progress=False, records=records, feedback=FeedbackLookup(cache)
    )
    assert records[0]["query_id"] == query.id
    assert records[0]["feedback"] == [pytest.approx(1.0), None]
    assert records[0]["demo_ids"] == [first, second]
    assert all(f is None for r in records[1:] for f in r["feedback"])
    summed: list[dict] = []
    lookup = FeedbackLookup(FeedbackCache(cache.path), length_normalised=False)
    evaluate_icl(task, lvlm, config, progress=False, records=summed, feedback=lookup)
    assert summed[0]["feedback"] == [pytest.approx(3.0), None]


def _without_timings(results: dict) -> dict:
    results = json.loads(json.dumps(results))
    results.pop("seconds")
    results.pop("provenance")
    for row in results["rows"]:
        row.pop("seconds")
    return results


def test_records_change_nothing_in_the_results_json(tiny_world: Path, tmp_path: Path) -> None:
    tasks = world_tasks(tiny_world)
    config = ICLEvalConfig(
        strategies=("random", "fixed"),
        shots=(0, 1, 2),
        seeds=(0, 1),
        max_queries=6,
        corpus_bootstrap_resamples=5,
    )
    chosen = [tasks["vqa"], tasks["caption"]]
    with_records = run_icl_eval(chosen, _lvlm(), config, None, tmp_path / "a", progress=False)
    without = run_icl_eval(
        chosen, _lvlm(), config, None, tmp_path / "b", progress=False, records=False
    )
    assert _without_timings(with_records) == _without_timings(without)
    assert (tmp_path / "a" / RESULTS_FILE).is_file() and (tmp_path / "b" / RESULTS_FILE).is_file()
    assert not (tmp_path / "b" / QUERIES_FILE).exists()
    records = read_query_records(tmp_path / "a" / QUERIES_FILE)
    assert len(records) == sum(row["n_queries"] for row in with_records["rows"])
    assert [_key(r) for r in records[::6]] == [_key(row) for row in with_records["rows"]]


def test_a_bad_record_file_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / QUERIES_FILE
    path.write_text('{"task": "vqa"}\n')
    with pytest.raises(ValueError, match=rf"{QUERIES_FILE}:1: .*missing \['strategy'"):
        read_query_records(path)
    path.write_text("\nnot json\n")
    with pytest.raises(ValueError, match=rf"{QUERIES_FILE}:2: not JSON"):
        read_query_records(path)

"""ICL evaluation: rows and their conventions, nested k-shot retrievals, results files, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drum.builtin.world.tasks import world_tasks
from drum.cli.main import app
from drum.data.example import Example
from drum.data.jsonl import read_examples
from drum.embed.example_embeddings import ExampleEmbeddings
from drum.embed.hf import HFDualEncoder
from drum.eval.icl import (
    RESULTS_FILE,
    ZERO_SHOT,
    ICLEvalConfig,
    check_eval,
    demos_for_shots,
    evaluate_icl,
    run_icl_eval,
)
from drum.eval.records import QUERIES_FILE, read_query_records
from drum.eval.report import render_report
from drum.metrics.registry import get_metric
from drum.retrieve.retriever import DemonstrationRetriever
from drum.retrieve.strategies import RetrievalConfig, StrategySpec
from drum.tasks.spec import TaskSpec
from drum.testing import FakeLVLM

NO_DEMO_REPLY = "nothing"
runner = CliRunner()


class FirstDemoLVLM(FakeLVLM):
    """Replies with the answer of the FIRST demonstration in the prompt (``NO_DEMO_REPLY``
    without any). With ``similar_last`` order that is the k-th most similar demonstration,
    so every shot count gets its own, hand-checkable accuracy."""

    def __init__(self) -> None:
        super().__init__("first_demo", fingerprint="first-demo-dummy", no_demo_reply=NO_DEMO_REPLY)


@pytest.fixture(scope="module")
def clip(tiny_clip_dir: Path) -> HFDualEncoder:
    return HFDualEncoder(tiny_clip_dir)


def _value(rows: list[dict], strategy: str, shots: int, seed: int | None, metric: str) -> float:
    (row,) = [r for r in rows if (r["strategy"], r["shots"], r["seed"]) == (strategy, shots, seed)]
    return row["metric"][metric]["value"]


def test_config_validates_and_normalises() -> None:
    config = ICLEvalConfig(strategies=("random",), shots=(4, 0, 1, 1), seeds=(3,))
    assert config.shots == (0, 1, 4)
    assert config.demo_shots == (1, 4)
    assert config.required_embedders == ()
    assert ICLEvalConfig(strategies=("image",), shots=(0,)).required_embedders == ()
    assert ICLEvalConfig(strategies=("image",), order="random").is_seeded("image")
    for bad in (
        {"strategies": ("bogus",)},
        {"strategies": (ZERO_SHOT,)},
        {"strategies": ("random",), "shots": (-1,)},
        {"strategies": (), "shots": (0, 1)},
        {"strategies": ("random",), "seeds": ()},
        {"strategies": ("random",), "order": "sideways"},
        {"strategies": ("random",), "max_queries": 0},
    ):
        with pytest.raises(ValueError):
            ICLEvalConfig(**bad)


def test_config_resolves_strategy_names_to_specs() -> None:
    run2 = StrategySpec("drum-run2", "concat", embedder="drum2")
    config = ICLEvalConfig(strategies=("random", "image", "drum", run2, "concat"))
    assert [s.name for s in config.strategies] == ["random", "image", "drum", "drum-run2", "concat"]
    assert config.strategies[2] == StrategySpec("drum", "concat", embedder="drum")
    # First use order; the rules need no embedder.
    assert config.required_embedders == ("default", "drum", "drum2")
    assert config.to_dict()["strategies"][3] == {
        "name": "drum-run2",
        "combine": "concat",
        "embedder": "drum2",
        "image_weight": None,
        "train_seed": None,
    }
    # Runs of one retriever share a name and differ by train seed; nothing else repeats.
    runs = [StrategySpec("drum", "concat", embedder=f"run{s}", train_seed=s) for s in (0, 1)]
    assert len(ICLEvalConfig(strategies=tuple(runs)).strategies) == 2
    for bad in (
        {"strategies": ("image", StrategySpec("image", "image", embedder="other"))},
        {"strategies": (runs[0], runs[0])},
        {"strategies": (runs[0],), "order": "random"},
        {"strategies": (StrategySpec(ZERO_SHOT, "image"),)},
    ):
        with pytest.raises(ValueError):
            ICLEvalConfig(**bad)


def test_demos_for_shots_slices_by_order() -> None:
    ids = ("d4", "d3", "d2", "d1")  # similar_last: d1 is the best match
    assert demos_for_shots(ids, 2, "similar_last") == ("d2", "d1")
    assert demos_for_shots(ids[::-1], 2, "similar_first") == ("d1", "d2")
    assert demos_for_shots(ids, 0, "similar_last") == ()
    with pytest.raises(ValueError, match="retrieve for each k"):
        demos_for_shots(ids, 2, "random")


def test_seeded_strategies_rows_match_a_hand_computation(tiny_world: Path) -> None:
    task = world_tasks(tiny_world)["classification"]
    lvlm = FirstDemoLVLM()
    config = ICLEvalConfig(strategies=("random", "fixed"), shots=(0, 1, 2, 4), seeds=(0, 1))
    rows = evaluate_icl(task, lvlm, config, progress=False)

    keys = [(r["strategy"], r["shots"], r["seed"]) for r in rows]
    assert keys[0] == (ZERO_SHOT, 0, None)
    expected_keys = [(ZERO_SHOT, 0, None)] + [
        (s, k, seed) for s in ("random", "fixed") for seed in (0, 1) for k in (1, 2, 4)
    ]
    assert keys == expected_keys
    pool = read_examples(task.pool)
    queries = read_examples(task.queries)
    by_id = {e.id: e for e in pool}
    # Zero-shot prompts are generated once for the task, not once per strategy or seed.
    assert lvlm.demo_counts.count(0) == len(queries)
    assert all(r["n_queries"] == len(queries) for r in rows)
    assert _value(rows, ZERO_SHOT, 0, None, "accuracy") == 0.0

    for seed in (0, 1):
        # fixed: the k-shot demos are exactly an independent k-shot retrieval.
        for k in (1, 2, 4):
            retriever = DemonstrationRetriever(pool, RetrievalConfig("fixed", k=k, seed=seed))
            hits = [
                by_id[r.demo_ids[0]].answer == q.answer
                for r, q in zip(retriever.retrieve(queries), queries, strict=True)
            ]
            assert _value(rows, "fixed", k, seed, "accuracy") == pytest.approx(
                sum(hits) / len(hits)
            )
        # random: the k-shot demos are the last k of the seed's 4-shot draw.
        deep = DemonstrationRetriever(pool, RetrievalConfig("random", k=4, seed=seed)).retrieve(
            queries
        )
        for k in (1, 2, 4):
            hits = [
                by_id[r.demo_ids[-k]].answer == q.answer for r, q in zip(deep, queries, strict=True)
            ]
            assert _value(rows, "random", k, seed, "accuracy") == pytest.approx(
                sum(hits) / len(hits)
            )
    for row in rows:
        low, high = row["metric"]["accuracy"]["ci95"]
        assert 0.0 <= low <= row["metric"]["accuracy"]["value"] <= high <= 1.0


@pytest.mark.parametrize("order", ["similar_last", "similar_first"])
def test_last_k_of_the_deepest_retrieval_is_the_k_retrieval(
    tiny_world: Path, clip: HFDualEncoder, order: str
) -> None:
    task = world_tasks(tiny_world)["vqa"]
    pool, queries = read_examples(task.pool), read_examples(task.queries)
    pool_embeddings = ExampleEmbeddings.compute(pool, clip)
    query_embeddings = ExampleEmbeddings.compute(queries, clip)
    for strategy in ("image", "text", "concat"):
        config = RetrievalConfig(strategy=strategy, k=8, order=order)
        retriever = DemonstrationRetriever(pool_embeddings, config)
        deep = retriever.retrieve(queries, query_embeddings)
        for k in (1, 2, 4, 8):
            direct = retriever.retrieve(queries, query_embeddings, k=k)
            for d, r in zip(deep, direct, strict=True):
                sliced = demos_for_shots(d.demo_ids, k, order)
                scores = dict(zip(d.demo_ids, d.scores, strict=True))
                # The k best scores always agree; ids too unless two pool examples tie (the
                # world repeats question texts, so the text strategy has exact ties).
                assert [scores[i] for i in sliced] == pytest.approx(list(r.scores), abs=1e-6)
                if strategy != "text":
                    assert sliced == r.demo_ids


def test_similarity_strategies_run_once_whatever_the_seeds(
    tiny_world: Path, clip: HFDualEncoder
) -> None:
    task = world_tasks(tiny_world)["vqa"]
    lvlm = FirstDemoLVLM()
    config = ICLEvalConfig(
        strategies=("image", "concat"), shots=(0, 1, 2), seeds=(0, 1, 2), max_queries=10
    )
    rows = evaluate_icl(task, lvlm, config, embedders={"default": clip}, progress=False)
    keys = [(r["strategy"], r["shots"], r["seed"]) for r in rows]
    assert keys == [(ZERO_SHOT, 0, None)] + [
        (s, k, None) for s in ("image", "concat") for k in (1, 2)
    ]
    pool, queries = read_examples(task.pool), read_examples(task.queries)[:10]
    by_id = {e.id: e for e in pool}
    accuracy = get_metric("vqa_accuracy").fn
    retriever = DemonstrationRetriever(
        ExampleEmbeddings.compute(pool, clip), RetrievalConfig("image", k=2)
    )
    retrievals = retriever.retrieve(queries, ExampleEmbeddings.compute(queries, clip))
    # 2-shot, similar_last: the first demo shown is the second most similar.
    expected = [
        accuracy(by_id[r.demo_ids[0]].answer, q.answers)
        for r, q in zip(retrievals, queries, strict=True)
    ]
    assert _value(rows, "image", 2, None, "vqa_accuracy") == pytest.approx(
        sum(expected) / len(expected)
    )
    with pytest.raises(ValueError, match="embedder"):
        evaluate_icl(task, lvlm, config, embedders=None, progress=False)


def test_each_strategy_compares_with_the_embedder_its_spec_names(
    tiny_world: Path, clip: HFDualEncoder, tiny_siglip_dir: Path
) -> None:
    task = world_tasks(tiny_world)["vqa"]
    siglip = HFDualEncoder(tiny_siglip_dir)
    runs = [StrategySpec("siglip-image", "image", embedder="siglip", train_seed=s) for s in (3, 4)]
    config = ICLEvalConfig(
        strategies=("image", *runs, "drum"), shots=(1, 2), seeds=(0, 1), max_queries=10
    )
    embedders = {"default": clip, "siglip": siglip, "drum": siglip}
    rows = evaluate_icl(task, FirstDemoLVLM(), config, embedders, progress=False)
    assert [(r["strategy"], r["shots"], r["seed"]) for r in rows] == [
        (name, k, seed)
        for name, seed in (
            ("image", None),
            ("siglip-image", 3),
            ("siglip-image", 4),
            ("drum", None),
        )
        for k in (1, 2)
    ]
    # The same rows as the plain strategies over that embedder as the default one.
    plain = ICLEvalConfig(strategies=("image", "concat"), shots=(1, 2), max_queries=10)
    reference = evaluate_icl(task, FirstDemoLVLM(), plain, {"default": siglip}, progress=False)
    for name, plain_name, seed in (
        ("siglip-image", "image", 3),
        ("siglip-image", "image", 4),
        ("drum", "concat", None),
    ):
        for k in (1, 2):
            assert _value(rows, name, k, seed, "vqa_accuracy") == _value(
                reference, plain_name, k, None, "vqa_accuracy"
            )
    with_clip = evaluate_icl(task, FirstDemoLVLM(), plain, {"default": clip}, progress=False)
    assert [r["metric"] for r in rows[:2]] == [r["metric"] for r in with_clip[:2]]
    # The two embedders disagree here, so the comparisons above tell them apart.
    assert [r["metric"] for r in with_clip] != [r["metric"] for r in reference]


def test_a_missing_embedder_fails_before_any_model_work(tiny_world: Path, clip, tmp_path) -> None:
    tasks = world_tasks(tiny_world)
    lvlm = FirstDemoLVLM()
    run2 = StrategySpec("drum-run2", "concat", embedder="drum2")
    config = ICLEvalConfig(strategies=("random", "drum", run2), shots=(0, 1), max_queries=4)
    with pytest.raises(ValueError, match=r"\['drum'\].*embedder 'drum'.*given: 'default'"):
        evaluate_icl(tasks["vqa"], lvlm, config, {"default": clip}, progress=False)
    with pytest.raises(ValueError, match=r"\['drum-run2'\].*embedder 'drum2'"):
        check_eval([tasks["vqa"]], config, ["default", "drum"])
    with pytest.raises(ValueError, match="embedder 'drum'"):
        run_icl_eval([tasks["vqa"]], lvlm, config, None, tmp_path / "out", progress=False)
    assert lvlm.demo_counts == []  # not even the zero-shot row was generated
    assert not (tmp_path / "out").exists()
    check_eval([tasks["vqa"]], config, {"drum": clip, "drum2": clip})
    # Without demonstrations no embedder is needed at all.
    check_eval([tasks["vqa"]], ICLEvalConfig(strategies=("drum",), shots=(0,)))


def test_corpus_metrics_get_intervals(tiny_world: Path) -> None:
    task = world_tasks(tiny_world)["caption"]
    config = ICLEvalConfig(
        strategies=("fixed",), shots=(0, 1), max_queries=6, corpus_bootstrap_resamples=5
    )
    rows = evaluate_icl(task, FirstDemoLVLM(), config, progress=False)
    assert [r["strategy"] for r in rows] == [ZERO_SHOT, "fixed"]
    for row in rows:
        assert list(row["metric"]) == ["cider", "bleu4", "rouge_l"]
        for summary in row["metric"].values():
            assert len(summary["ci95"]) == 2


def test_run_writes_json_that_round_trips_and_the_report(tiny_world: Path, tmp_path: Path) -> None:
    tasks = world_tasks(tiny_world)
    config = ICLEvalConfig(
        strategies=("random", "fixed"), shots=(0, 1, 2), seeds=(0, 1), max_queries=8
    )
    out = tmp_path / "run"
    results = run_icl_eval(
        [tasks["vqa"], tasks["classification"]], FirstDemoLVLM(), config, None, out, progress=False
    )
    saved = json.loads((out / RESULTS_FILE).read_text())
    assert saved == results
    assert set(saved) >= {"config", "rows", "provenance"}
    assert saved["config"]["lvlm"]["fingerprint"] == "first-demo-dummy"
    assert saved["config"]["embedders"] == {}
    assert [s["name"] for s in saved["config"]["strategies"]] == ["random", "fixed"]
    assert [t["name"] for t in saved["config"]["tasks"]] == ["vqa", "classification"]
    assert saved["config"]["shots"] == [0, 1, 2]
    # Per task: 1 zero-shot row + 2 strategies x 2 seeds x 2 shot counts.
    assert len(saved["rows"]) == 2 * (1 + 2 * 2 * 2)
    assert sum(r["strategy"] == ZERO_SHOT for r in saved["rows"]) == 2

    markdown = (out / "icl_results.md").read_text()
    assert "| zero-shot |" in markdown and "| random |" in markdown and "| fixed |" in markdown
    assert "### vqa (vqa_accuracy)" in markdown and "### classification (accuracy)" in markdown
    assert (out / "icl_results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The report needs nothing but the JSON.
    elsewhere = tmp_path / "copy" / RESULTS_FILE
    elsewhere.parent.mkdir()
    elsewhere.write_text((out / RESULTS_FILE).read_text())
    markdown_path, png_path = render_report(elsewhere)
    assert markdown_path.read_text() == markdown
    assert png_path.stat().st_size > 0


# ------------------------------------------------------------------------------------- CLI
def _eval_args(tiny_world: Path, tmp_path: Path, *extra: str) -> list[str]:
    return [
        "eval",
        "--world",
        str(tiny_world),
        "--model",
        str(tmp_path / "no-such-model"),  # errors must come before any model loads
        "--out",
        str(tmp_path / "out"),
        *extra,
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--task", "vqa,detection"), "unknown task"),
        (("--strategy", "random,psychic"), "unknown strategy"),
        (("--strategy", "random", "--shots", "0,61"), "exceed"),
        (("--strategy", "random,image"), "embedder"),
        (("--strategy", "random,drum", "--embedder", "e"), "embedder 'drum'"),
        (("--strategy", "random", "--shots", "0,one"), "--shots"),
        (("--split", "pool"), "split"),
        (("--strategy", "random", "--feedback-cache", "no/feedback.jsonl"), "--feedback-cache"),
    ],
)
def test_cli_errors_exit_2(
    tiny_world: Path, tmp_path: Path, extra: tuple[str, ...], message: str
) -> None:
    result = runner.invoke(app, _eval_args(tiny_world, tmp_path, *extra))
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_cli_reports_a_bad_task_file(tmp_path: Path) -> None:
    task_file = tmp_path / "task.json"
    task_file.write_text(json.dumps({"name": "t", "task_type": "vqa"}))
    args = ["eval", "--task-file", str(task_file), "--model", "m", "--out", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "task.json" in result.output and "missing field" in result.output


def test_cli_needs_tasks(tmp_path: Path) -> None:
    result = runner.invoke(app, ["eval", "--model", "m", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "nothing to evaluate" in result.output
    result = runner.invoke(app, ["eval", "--task", "vqa", "--model", "m", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "--world" in result.output


@pytest.fixture(scope="module")
def tiny_lvlm_dir(tiny_clip_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from drum.builtin.lvlm.model import BuiltinLVLMArchitecture, build_builtin_lvlm

    torch.manual_seed(0)
    model, processor = build_builtin_lvlm(
        BuiltinLVLMArchitecture(hidden=32, layers=2, heads=2, intermediate=64), tiny_clip_dir
    )
    path = tmp_path_factory.mktemp("tiny_lvlm")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def test_cli_eval_end_to_end_with_a_tiny_hf_lvlm(
    tiny_world: Path, tiny_clip_dir: Path, tiny_lvlm_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    feedback = tmp_path / "feedback.jsonl"
    feedback.write_text("")  # an empty feedback cache: every record's feedback is null
    result = runner.invoke(
        app,
        [
            "eval",
            "--world",
            str(tiny_world),
            "--strategy",
            "random,image",
            "--shots",
            "0,1",
            "--seeds",
            "0",
            "--model",
            str(tiny_lvlm_dir),
            "--embedder",
            str(tiny_clip_dir),
            "--max-queries",
            "4",
            "--bootstrap-resamples",
            "50",
            "--corpus-bootstrap-resamples",
            "5",
            "--cache",
            str(tmp_path / "cache"),
            "--feedback-cache",
            str(feedback),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    results = json.loads((out / RESULTS_FILE).read_text())
    rows = results["rows"]
    # Per task: zero-shot, random (seed 0) and image (deterministic) at one shot.
    assert [(r["task"], r["strategy"], r["seed"]) for r in rows] == [
        (task, strategy, seed)
        for task in ("vqa", "caption", "classification")
        for strategy, seed in ((ZERO_SHOT, None), ("random", 0), ("image", None))
    ]
    assert all(r["n_queries"] == 4 for r in rows)
    assert results["config"]["lvlm"]["name"] == str(tiny_lvlm_dir)
    assert list(results["config"]["embedders"]) == ["default"]
    assert results["config"]["embedders"]["default"]["fingerprint"].startswith("clip-")
    assert (out / "icl_results.md").is_file() and (out / "icl_results.png").is_file()
    assert f"- embedder: `{tiny_clip_dir}`" in (out / "icl_results.md").read_text()
    assert "| zero-shot |" in result.output
    records = read_query_records(out / QUERIES_FILE)
    assert len(records) == 4 * len(rows)
    assert {len(r["demo_ids"]) for r in records if r["strategy"] != ZERO_SHOT} == {1}
    assert all(f is None for r in records for f in r["feedback"])


def test_fixed_statistics_ci_bootstraps_per_example_cider() -> None:
    from drum.eval.icl import score_predictions
    from drum.metrics.registry import get_metric

    colours, shapes = ["red", "blue", "green"], ["circle", "square", "cross", "star"]
    references = {
        str(i): [f"a {colours[i % 3]} {shapes[i % 4]}", f"one {colours[i % 3]} {shapes[i % 4]}"]
        for i in range(12)
    }
    predictions = {
        k: (refs[0] if int(k) % 2 else "two blue squares") for k, refs in references.items()
    }
    specs = [get_metric("cider")]
    rescored = score_predictions(predictions, references, specs, 200, 50, "rescore")[0]["cider"]
    fixed_scores, per_query = score_predictions(
        predictions, references, specs, 200, 50, "fixed_statistics", per_query=True
    )
    fixed = fixed_scores["cider"]
    assert len(per_query["cider"]) == len(predictions)
    assert fixed["value"] == rescored["value"]  # the point estimate does not change
    low, high = fixed["ci95"]
    assert low < fixed["value"] < high


# --------------------------------------------------- shot counts the pool cannot give, up front
def _self_retrieval_task(tiny_world: Path, tmp_path: Path) -> tuple[TaskSpec, int]:
    """A task whose queries are its pool's first 3 examples, plus an exact copy of the first
    under another id; returns it and how many demonstrations that first query has left."""
    from drum.data.jsonl import write_examples

    source = read_examples(tiny_world / "classification" / "pool.jsonl")[:12]
    first = source[0]
    pool = [*source, Example("copy-of-first", first.images, first.text, first.answers, first.task)]
    write_examples(tmp_path / "pool.jsonl", pool)
    write_examples(tmp_path / "queries.jsonl", source[:3])
    task = TaskSpec("self", first.task, tmp_path / "pool.jsonl", tmp_path / "queries.jsonl")
    return task, len(pool) - 2


@pytest.mark.parametrize("strategy", ["random", "fixed", "image", "text", "cross", "concat"])
def test_shots_equal_to_the_pool_left_after_exclusions_run_at_exactly_k(
    tiny_world: Path, tmp_path: Path, clip: HFDualEncoder, strategy: str
) -> None:
    task, available = _self_retrieval_task(tiny_world, tmp_path)
    config = ICLEvalConfig(strategies=(strategy,), shots=(1, available))
    check_eval([task], config, ["default"])
    lvlm = FirstDemoLVLM()
    rows = evaluate_icl(task, lvlm, config, {"default": clip}, progress=False)
    assert [r["shots"] for r in rows] == [1, available]
    assert lvlm.demo_counts == [1] * 3 + [available] * 3  # every prompt shows its row's k


@pytest.mark.parametrize("strategy", ["random", "fixed", "image", "text", "cross", "concat"])
def test_shots_above_the_pool_left_after_exclusions_fail_before_any_generation(
    tiny_world: Path, tmp_path: Path, clip: HFDualEncoder, strategy: str
) -> None:
    task, available = _self_retrieval_task(tiny_world, tmp_path)
    config = ICLEvalConfig(strategies=(strategy,), shots=(0, available + 1))
    message = (
        rf"task 'self': {available + 1} shots exceed the {available} pool examples left for "
        rf"query '{read_examples(task.queries)[0].id}'"
    )
    with pytest.raises(ValueError, match=message):
        check_eval([task], config, ["default"])
    lvlm = FirstDemoLVLM()
    with pytest.raises(ValueError, match=message):
        evaluate_icl(task, lvlm, config, {"default": clip}, progress=False)
    assert lvlm.calls == 0  # not even the zero-shot row was generated


# --------------------------------------------------- prompts longer than the LVLM's context
def test_rows_count_the_prompts_cut_to_fit_the_context(tiny_world: Path, tmp_path: Path) -> None:
    from drum.builtin.assets import ASSETS_DIR
    from drum.lvlm.hf import HFLVLM, ContextOverflowError

    task = world_tasks(tiny_world)["vqa"]
    # 40 demonstrations overflow the built-in LVLM's 512 positions; one does not.
    config = ICLEvalConfig(strategies=("fixed",), shots=(1, 40), max_queries=2)
    with pytest.raises(ContextOverflowError, match="context of 512"):
        evaluate_icl(task, HFLVLM(ASSETS_DIR / "lvlm"), config, progress=False)
    lvlm = HFLVLM(ASSETS_DIR / "lvlm", context_overflow="drop_demos")
    one, forty = evaluate_icl(task, lvlm, config, progress=False)
    assert (one["shots"], one["truncated_prompts"], one["dropped_demos"]) == (1, 0, 0)
    assert forty["shots"] == 40 and forty["truncated_prompts"] == 2
    assert forty["dropped_demos"] == lvlm.dropped_demos > 0
    results = run_icl_eval([task], lvlm, config, None, tmp_path, progress=False)
    assert results["config"]["lvlm"]["context_overflow"] == "drop_demos"
    assert results["config"]["lvlm"]["context_length"] == 512
    assert [r["truncated_prompts"] for r in results["rows"]] == [0, 2]
    # An LVLM that keeps no such count says so with null.
    (row,) = evaluate_icl(task, FirstDemoLVLM(), ICLEvalConfig(("fixed",), (1,)), progress=False)
    assert row["truncated_prompts"] is None and row["dropped_demos"] is None


# --------------------------------------------------- queries without answers cannot be scored
def _answerless_task(tiny_world: Path, tmp_path: Path, side: str) -> TaskSpec:
    """The vqa task with its ``side`` (pool or queries) replaced by 3 examples, 2 answerless."""
    from tests.data.importers.fixtures import write_answerless

    task = world_tasks(tiny_world)["vqa"]
    source = task.pool if side == "pool" else task.queries
    answerless = write_answerless(source, tmp_path / f"answerless_{side}.jsonl")
    pool, queries = (answerless, task.queries) if side == "pool" else (task.pool, answerless)
    return TaskSpec("vqa", "vqa", pool, queries)


def test_queries_without_answers_fail_before_any_model_runs(
    tiny_world: Path, tmp_path: Path
) -> None:
    task = _answerless_task(tiny_world, tmp_path, "queries")
    message = r"answerless_queries\.jsonl: 2 of 3 queries have no answers; scoring needs refer"
    config = ICLEvalConfig(strategies=("random",), shots=(0, 1))
    with pytest.raises(ValueError, match=message):
        check_eval([task], config)
    lvlm = FirstDemoLVLM()
    with pytest.raises(ValueError, match=message):
        evaluate_icl(task, lvlm, config, progress=False)
    assert lvlm.calls == 0


def test_a_pool_without_answers_fails_naming_file_and_line(
    tiny_world: Path, tmp_path: Path
) -> None:
    task = _answerless_task(tiny_world, tmp_path, "pool")
    config = ICLEvalConfig(strategies=("random",), shots=(0, 1))
    with pytest.raises(ValueError, match=r"answerless_pool\.jsonl:2: example .* has no answers"):
        check_eval([task], config)


@pytest.mark.parametrize(
    ("side", "message"),
    [
        ("queries", "answerless_queries.jsonl: 2 of 3 queries have no answers; scoring needs"),
        ("pool", "answerless_pool.jsonl:2: example"),
    ],
)
def test_cli_eval_refuses_examples_without_answers_before_loading_models(
    tiny_world: Path, tmp_path: Path, side: str, message: str
) -> None:
    task = _answerless_task(tiny_world, tmp_path, side)
    task_file = tmp_path / "task.json"
    task_file.write_text(
        json.dumps({"name": "t", "task_type": "vqa", "pool": str(task.pool),
                    "queries": str(task.queries)})
    )  # fmt: skip
    args = ["eval", "--task-file", str(task_file), "--strategy", "random", "--shots", "0,1"]
    result = runner.invoke(app, [*args, "--model", str(tmp_path / "no-model"), "--out",
                                 str(tmp_path / "out")])  # fmt: skip
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert not (tmp_path / "out").exists()

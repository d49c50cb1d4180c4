"""``drum demon score`` / ``drum demon eval``: output files, resuming, one-line errors (exit 2)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drum.cli import demon as demon_cli
from drum.cli.main import app
from drum.demon.categories import CATEGORIES
from drum.demon.format import read_demon_root, read_demon_task
from drum.demon.predictions import write_predictions
from drum.testing import FakeLVLM
from tests.demon import conftest as demon_fixtures
from tests.demon.conftest import write_scoring_predictions
from tests.demon.test_run import reply

runner = CliRunner()
# The DEMON fixtures (tests/demon/conftest.py), found by pytest as this module's attributes.
scoring_root = demon_fixtures.scoring_root
tiny_lvlm_dirs = demon_fixtures.tiny_lvlm_dirs
OUTPUTS = ("demon_scores.json", "demon_scores.md", "demon_scores.png")


def one_error_line(output: str, *needles: str) -> None:
    lines = [line for line in output.strip().splitlines() if "Loading weights" not in line]
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    for needle in needles:
        assert needle in lines[0], output


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> list[FakeLVLM]:
    """``drum demon eval --model fake/lvlm`` gets a FakeLVLM; the list holds each one made."""
    made: list[FakeLVLM] = []

    def load(model: str, option: str = "--model", device: str = "cpu") -> FakeLVLM:
        made.append(FakeLVLM(reply=reply, fail_on_call=2 if model == "fake/killed" else None))
        return made[-1]

    monkeypatch.setattr(demon_cli, "load_lvlm", load)
    return made


def test_score_writes_the_json_the_jsonl_and_the_report(scoring_root: Path, tmp_path: Path) -> None:
    results = write_scoring_predictions(scoring_root, tmp_path / "results")
    out = tmp_path / "scores"
    args = ["demon", "score", "--data", str(scoring_root), "--predictions", str(results)]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert all((out / name).is_file() for name in OUTPUTS)
    scores = json.loads((out / "demon_scores.json").read_text())
    assert set(scores["tasks"]) == {"ALFRED", "COMICS_Panel", "MMCoQA", "TQA"}
    assert scores["tasks"]["TQA"]["score"] == 0.5
    assert scores["categories"]["multi_modal_dialogue"] == pytest.approx(66.667)
    lines = (out / "TQA" / "sample_scores.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"sample_id": "q0", "score": 1.0},
        {"sample_id": "q1", "score": 0.0},
    ]
    assert "| multi_modal_dialogue | 66.67 | 2/2 |" in result.stdout
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "two"), "--tasks", "TQA, ALFRED"])
    assert result.exit_code == 0, result.output
    assert list(json.loads((tmp_path / "two" / "demon_scores.json").read_text())["tasks"]) == [
        "TQA",
        "ALFRED",
    ]


def test_score_errors_are_one_line(scoring_root: Path, tmp_path: Path) -> None:
    results = write_scoring_predictions(scoring_root, tmp_path / "results", ["TQA"])
    out = ["--out", str(tmp_path / "scores")]
    good = ["demon", "score", "--data", str(scoring_root), "--predictions", str(results), *out]
    cases = {
        "no such directory": ["demon", "score", "--data", str(tmp_path / "nowhere"),
                              "--predictions", str(results), *out],
        "no task 'Nope'": [*good, "--tasks", "Nope"],
        "did you mean 'TQA'": [*good, "--tasks", "tqa"],
        "no predictions for task(s) ['ALFRED']": [*good, "--tasks", "TQA,ALFRED"],
        "--predictions": ["demon", "score", "--data", str(scoring_root),
                          "--predictions", str(tmp_path / "none"), *out],
    }  # fmt: skip
    for needle, args in cases.items():
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (needle, result.output)
        one_error_line(result.output, needle)
    write_predictions = json.loads((results / "TQA" / "pred.json").read_text())[:1]
    (results / "TQA" / "pred.json").write_text(json.dumps(write_predictions))
    result = runner.invoke(app, good)
    assert result.exit_code == 2
    one_error_line(result.output, "'TQA'", "no prediction for 1 of 2", "['q1']")


def test_eval_generates_resumes_and_scores(
    scoring_root: Path, tmp_path: Path, fake: list[FakeLVLM]
) -> None:
    out = tmp_path / "run"
    args = ["demon", "eval", "--data", str(scoring_root), "--out", str(out), "--batch-size", "2"]
    killed = runner.invoke(app, [*args, "--model", "fake/killed"])
    assert isinstance(killed.exception, RuntimeError)  # killed on its second batch
    saved = json.loads((out / "ALFRED" / "pred.json").read_text())
    assert [record["sample_id"] for record in saved] == [0]
    result = runner.invoke(app, [*args, "--model", "fake/lvlm"])
    assert result.exit_code == 0, result.output
    assert len(fake[-1].generated) == 7 - 1  # ALFRED's one sample was not generated again
    assert all((out / name).is_file() for name in OUTPUTS)
    assert all((out / task / "pred.json").is_file() for task in ("MMCoQA", "TQA"))
    scores = json.loads((out / "demon_scores.json").read_text())
    assert scores["tasks"]["TQA"]["score"] == 0.5
    assert scores["config"]["batch_size"] == 2 and scores["config"]["max_new_tokens"] == 300
    result = runner.invoke(app, [*args, "--model", "fake/lvlm", "--max-new-tokens", "5"])
    assert result.exit_code == 2
    one_error_line(result.output, "holds predictions of another run", "max_new_tokens")


def test_eval_max_per_task_and_tasks(
    scoring_root: Path, tmp_path: Path, fake: list[FakeLVLM]
) -> None:
    out = tmp_path / "run"
    args = ["demon", "eval", "--model", "fake/lvlm", "--data", str(scoring_root)]
    args += ["--out", str(out), "--tasks", "TQA,COMICS_Panel", "--max-per-task", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert len(fake[-1].generated) == 2
    scores = json.loads((out / "demon_scores.json").read_text())
    assert {task: entry["n"] for task, entry in scores["tasks"].items()} == {
        "TQA": 1, "COMICS_Panel": 1,
    }  # fmt: skip
    assert not (out / "MMCoQA").exists()


def test_eval_errors_are_one_line_before_any_model_loads(
    scoring_root: Path, tmp_path: Path, fake: list[FakeLVLM]
) -> None:
    base = ["demon", "eval", "--out", str(tmp_path / "run")]
    data = ["--data", str(scoring_root)]
    not_a_model = tmp_path / "empty"
    not_a_model.mkdir()
    cases = {
        "--data": [*base, "--model", "fake/lvlm", "--data", str(tmp_path / "nowhere")],
        "no task 'Nope'": [*base, *data, "--model", "fake/lvlm", "--tasks", "Nope"],
        "--model": [*base, *data, "--model", str(tmp_path / "no" / "such" / "model")],
        "config.json": [*base, *data, "--model", str(not_a_model)],
        "--batch-size must be a positive integer": [
            *base, *data, "--model", "fake/lvlm", "--batch-size", "0",
        ],
        "--max-per-task must be a positive integer": [
            *base, *data, "--model", "fake/lvlm", "--max-per-task", "0",
        ],
        "--tasks names no task": [*base, *data, "--model", "fake/lvlm", "--tasks", " , "],
    }  # fmt: skip
    for needle, args in cases.items():
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (needle, result.output)
        one_error_line(result.output, needle)
    broken = tmp_path / "run" / "TQA" / "pred.json"
    broken.parent.mkdir(parents=True)
    broken.write_text("[{oops")
    result = runner.invoke(app, [*base, *data, "--model", "fake/lvlm"])
    assert result.exit_code == 2
    one_error_line(result.output, "pred.json", "malformed JSON")
    assert fake == []


def test_eval_defaults_are_the_librarys() -> None:
    import typer

    from drum.demon import run

    command = typer.main.get_command(app).commands["demon"].commands["eval"]  # type: ignore[attr-defined]
    context = command.make_context("eval", ["-m", "x", "--data", "d", "--out", "o"])
    assert context.params["batch_size"] == run.BATCH_SIZE
    assert context.params["max_new_tokens"] == run.MAX_NEW_TOKENS


@pytest.mark.parametrize("family", ["llava", "qwen2_vl"])
def test_eval_on_a_tiny_real_model(
    family: str, scoring_root: Path, tmp_path: Path, tiny_lvlm_dirs: Callable[[str], Path]
) -> None:
    out = tmp_path / "run"
    args = ["demon", "eval", "--model", str(tiny_lvlm_dirs(family)), "--data", str(scoring_root)]
    args += ["--out", str(out), "--tasks", "COMICS_Panel,MMCoQA", "--max-new-tokens", "3"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    task = read_demon_task(scoring_root / "MMCoQA")
    records = json.loads((out / "MMCoQA" / "pred.json").read_text())
    assert [r["sample_id"] for r in records] == [s.sample_id for s in task.samples]
    assert json.loads((out / "demon_scores.json").read_text())["config"]["model"].startswith(family)


def test_a_num_sample_mismatch_is_one_warning_line(scoring_root: Path, tmp_path: Path) -> None:
    results = write_scoring_predictions(scoring_root, tmp_path / "results", ["TQA"])
    core = scoring_root / "TQA" / "core" / "core.json"
    record = json.loads(core.read_text())
    record["metadata"]["num_sample"] = 5
    core.write_text(json.dumps(record))
    args = ["demon", "score", "--data", str(scoring_root), "--predictions", str(results)]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "scores")])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "num_sample is 5" in warnings[0]


def test_make_builtin_writes_both_splits_that_read_back(tmp_path: Path) -> None:
    out = tmp_path / "builtin"
    args = ["demon", "make-builtin", "--out", str(out), "--n-train", "2", "--n-test", "3"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    card = json.loads((out / "builtin_demon.json").read_text())
    assert card["config"]["n_test"] == 3
    tests = sorted(p for p in (out / "test").iterdir() if p.is_dir())
    assert tests and all(len(read_demon_task(p).samples) == 3 for p in tests)
    assert all(
        len(read_demon_task(p).samples) == 2 for p in (out / "train").iterdir() if p.is_dir()
    )


def test_make_builtin_errors_are_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demon", "make-builtin", "--world", str(tmp_path / "no-world")])
    assert result.exit_code == 2
    one_error_line(result.output, "--world", "world.json")
    args = ["demon", "make-builtin", "--out", str(tmp_path / "b"), "--n-test", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    one_error_line(result.output)


def test_score_on_the_builtin_tasks_aggregates_their_own_categories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from drum.demon import scorers

    root = tmp_path / "builtin"
    args = ["demon", "make-builtin", "--out", str(root), "--n-train", "2", "--n-test", "2"]
    assert runner.invoke(app, args).exit_code == 0
    # As if the kit's tasks had never been imported: the root's card alone must route its
    # image-choice tasks (TF-IDF would score "Image B" against Image A..D as Image A: 0%).
    monkeypatch.setattr(scorers, "_REGISTERED_IMAGE_CHOICE_TASKS", set())
    results = tmp_path / "results"
    for task in read_demon_root(root / "test"):  # gold responses as predictions: 100%
        write_predictions(results, task, {s.sample_id: s.response for s in task.samples})
    out = tmp_path / "scores"
    args = ["demon", "score", "--data", str(root / "test"), "--predictions", str(results)]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    scores = json.loads((out / "demon_scores.json").read_text())
    card = json.loads((root / "builtin_demon.json").read_text())
    assert scores["categories"] == {name: 100.0 for name in CATEGORIES}
    assert scores["missing"] == {}
    assert scores["category_members"]["multi_image_reasoning"] == [
        "SameCount", "SamePlaces", "WhichImage",
    ]  # fmt: skip
    grouped = [task for members in scores["category_members"].values() for task in members]
    assert grouped == list(card["tasks"])
    assert "| multi_image_reasoning | 100.00 | 3/3 |" in result.stdout
    assert "## other" not in result.stdout
    (root / "builtin_demon.json").write_text("{oops")
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "again")])
    assert result.exit_code == 2
    one_error_line(result.output, "builtin_demon.json", "not a built-in DEMON card")


def test_builtin_categories_finds_the_card_from_the_root_or_a_split(
    tmp_path: Path, scoring_root: Path
) -> None:
    from drum.builtin.demon import DEMON_TASKS, builtin_categories

    root = tmp_path / "builtin"
    args = ["demon", "make-builtin", "--out", str(root), "--n-train", "2", "--n-test", "2"]
    assert runner.invoke(app, args).exit_code == 0
    expected: dict[str, list[str]] = {}
    for name, spec in DEMON_TASKS.items():
        expected.setdefault(spec.category, []).append(name)
    expected_map = {name: tuple(members) for name, members in expected.items()}
    assert builtin_categories(root) == expected_map
    assert builtin_categories(root / "train") == builtin_categories(root / "test") == expected_map
    assert builtin_categories(scoring_root) is None


def test_benchmark_runs_the_shipped_base_and_a_ceiling(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    args = ["demon", "benchmark", "--out", str(out), "--tasks", "SameCount,ShapeChat"]
    args += ["--n-train", "4", "--n-test", "3", "--ceiling-steps", "2", "--batch-size", "3"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    results = json.loads((out / "demon_benchmark.json").read_text())
    assert results["base"]["shipped"]  # the default recipe: the shipped base, no training
    assert not (out / "base").exists()
    assert set(results["tasks"]) == {"SameCount", "ShapeChat"}
    assert results["tasks"]["SameCount"]["n"] == 3
    assert results["config"]["ceiling"]["max_steps"] == 2
    assert "| SameCount | multi_image_reasoning | Accuracy |" in result.output
    assert (out / "ceiling" / "ShapeChat" / "model.safetensors").is_file()


def test_benchmark_rejects_an_unknown_task(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demon", "benchmark", "--out", str(tmp_path), "--tasks", "Nope"])
    assert result.exit_code == 2
    one_error_line(result.output, "Nope", "SameCount")


def test_train_base_then_freeze_ships_a_base_the_benchmark_recognises(tmp_path: Path) -> None:
    from dataclasses import replace

    from drum.builtin.demon.assets import base_identity, shipped_demon_base
    from drum.builtin.demon.config import BuiltinDemonConfig
    from drum.builtin.demon.lvlm import BASE_CONFIG
    from drum.pipelines.demon_benchmark import DEFAULT_EMBEDDER, _resolved

    base = tmp_path / "base"
    args = ["demon", "train-base", "--out", str(base), "--max-steps", "2", "--n-train", "3"]
    trained = runner.invoke(app, [*args, "--n-test", "2"])
    assert trained.exit_code == 0, trained.output
    assert (tmp_path / "base_data" / "generic" / "train" / "AskOne").is_dir()
    frozen = runner.invoke(
        app, ["demon", "freeze-base", "--base", str(base), "--out", str(tmp_path / "ship")]
    )
    assert frozen.exit_code == 0, frozen.output
    generic = _resolved(BuiltinDemonConfig(n_train=3, n_test=2))
    identity = base_identity(replace(BASE_CONFIG, max_steps=2), generic, DEFAULT_EMBEDDER)
    assert shipped_demon_base(identity, tmp_path / "ship") == tmp_path / "ship" / "model"
    manifest = json.loads((tmp_path / "ship" / "MANIFEST.json").read_text())
    assert "--max-steps 2" in manifest["reproduce"][0]
    missing = runner.invoke(app, ["demon", "freeze-base", "--base", str(tmp_path / "nope")])
    assert missing.exit_code == 2


def test_score_reads_what_looks_wrong_and_says_so_once_per_task(
    scoring_root: Path, tmp_path: Path
) -> None:
    # Issue 22: an answer outside its choice list stopped the whole command.
    core = scoring_root / "COMICS_Panel" / "core" / "core.json"
    record = json.loads(core.read_text())
    record["data"][1]["response"] = "Image E"
    core.write_text(json.dumps(record))
    results = tmp_path / "results"
    write_predictions(results, read_demon_task(core.parent.parent), {0: "Image B", 1: "Image E"})
    write_scoring_predictions(scoring_root, results, ["ALFRED"])
    out = tmp_path / "scores"
    args = ["demon", "score", "--data", str(scoring_root), "--predictions", str(results)]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2, result.output
    assert warnings[0].startswith("warning: DEMON task 'ALFRED': metadata.question_type is empty")
    assert "'COMICS_Panel': 1 of 2 samples look wrong (response_not_in_choices" in warnings[1]
    scores = json.loads((out / "demon_scores.json").read_text())
    assert scores["tasks"]["COMICS_Panel"]["score"] == 1.0
    report = json.loads((out / "data_report.json").read_text())
    assert report["tasks"]["COMICS_Panel"]["problems"]["response_not_in_choices"]["sample_ids"] == [
        1
    ]


def test_eval_decodes_the_images_before_the_model_loads(
    scoring_root: Path, tmp_path: Path, fake: list[FakeLVLM]
) -> None:
    # Issue 22: a 0-byte image crashed the run after part of its predictions.
    empty = scoring_root / "TQA" / "core" / "images" / "3.png"
    empty.write_bytes(b"")
    args = ["demon", "eval", "--model", "fake/lvlm", "--data", str(scoring_root)]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    one_error_line(result.output, str(empty), "sample_id 'q1'", "unreadable or corrupt image")
    assert fake == [] and not (tmp_path / "run").exists()


def test_eval_on_an_out_in_use_names_the_holder_before_the_model_loads(
    scoring_root: Path, tmp_path: Path, fake: list[FakeLVLM]
) -> None:
    # Issue 22: two runs on one --out lost each other's predictions.
    import os
    import subprocess
    import sys

    from tests.demon.test_lock import HOLD, REPO

    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(out)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        args = ["demon", "eval", "--model", "fake/lvlm", "--data", str(scoring_root)]
        result = runner.invoke(app, [*args, "--out", str(out)])
        assert result.exit_code == 2
        one_error_line(result.output, f"in use by another DEMON run (pid {holder.pid} on host")
        assert fake == []
    finally:
        holder.kill()
        holder.wait()
    result = runner.invoke(app, [*args, "--out", str(out)])  # the holder was killed: taken over
    assert result.exit_code == 0, result.output
    assert len(fake) == 1

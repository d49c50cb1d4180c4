"""Bad options and model arguments: one line naming the option, exit 2, before slow work; and
the inputs that must pass (a file with a UTF-8 BOM, unknown fields with one warning)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drum.builtin.assets import ASSETS_DIR
from drum.cli.main import app
from tests.badinput.conftest import N_GOOD, BadInputs
from tests.badinput.test_commands import assert_one_line_error

runner = CliRunner()
LVLM = str(ASSETS_DIR / "lvlm")  # the shipped built-in LVLM: the tiny world's language


def _model_args(command: str, bad: BadInputs, tmp: Path, model: str) -> list[str]:
    good, out = str(bad.good), str(tmp / "out")
    return {
        "embed run": ["embed", "run", "--data", good, "--model", model, "--cache", out],
        "index build": ["index", "build", "--pool", good, "--model", model, "--out", out],
        "retrieve": ["retrieve", "--pool", good, "--queries", good, "--out", f"{out}.jsonl"]
        + ["--strategy", "image", "--model", model],
        "eval": ["eval", "--world", str(bad.bom_world), "--model", model, "--out", out]
        + ["--strategy", "random", "--shots", "0,1"],
        "mine": ["mine", "--world", str(bad.bom_world), "--lvlm", model, "--out", out],
    }[command]


@pytest.mark.parametrize("kind", ["missing", "not-a-model", "not-a-hub-id"])
@pytest.mark.parametrize("command", ["embed run", "index build", "retrieve", "eval", "mine"])
def test_a_bad_model_argument_is_one_line_naming_the_option(
    bad_inputs: BadInputs, tmp_path: Path, command: str, kind: str
) -> None:
    not_a_model = tmp_path / "not-a-model"
    not_a_model.mkdir()
    model, expected = {
        "missing": (str(tmp_path / "no-model"), "no such directory, and not a hub id"),
        "not-a-model": (str(not_a_model), "a directory without config.json"),
        "not-a-hub-id": ("org/name/extra", "no such directory, and not a hub id"),
    }[kind]
    result = runner.invoke(app, _model_args(command, bad_inputs, tmp_path, model))
    assert result.exit_code == 2, result.output
    option = "--lvlm" if command == "mine" else "--model"
    assert_one_line_error(result.output, f"{option}: {model}", expected)


def test_retrieve_checks_k_against_the_pool_before_the_model(
    bad_inputs: BadInputs, tmp_path: Path
) -> None:
    args = _model_args("retrieve", bad_inputs, tmp_path, str(tmp_path / "no-model"))
    result = runner.invoke(app, [*args, "--k", str(N_GOOD + 1)])
    assert result.exit_code == 2
    assert_one_line_error(result.output, f"--k {N_GOOD + 1} exceeds the {N_GOOD} examples")


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--strategy", "psychic"], "--strategy / --image-weight: unknown strategy 'psychic'"),
        (["--strategy", "random"], "strategy 'random' does not use an index"),
        (["--factory", "IVF"], "--factory: invalid FAISS factory string 'IVF'"),
        (["--factory", "PQ7"], "multiple of the number of subquantizers"),
        (["--factory", "IVF100,Flat"], f"Number of training points ({N_GOOD})"),
        (["--factory", "Flat,IDMap"], "IDMap is unsupported"),
    ],
)
def test_index_build_rejects_a_strategy_or_factory_before_embedding(
    bad_inputs: BadInputs, tiny_clip_dir: Path, tmp_path: Path, extra: list[str], expected: str
) -> None:
    args = _model_args("index build", bad_inputs, tmp_path, str(tiny_clip_dir))
    result = runner.invoke(app, [*args, "--cache", str(tmp_path / "cache"), *extra])
    assert result.exit_code == 2, result.output
    assert_one_line_error(result.output, expected, after_model_load=True)
    assert not (tmp_path / "cache").exists()  # nothing was embedded


@pytest.mark.parametrize(
    ("command", "kind"),
    [("retrieve", "directory"), ("index build", "file"), ("eval", "file"), ("mine", "file")],
)
def test_an_out_of_the_wrong_kind_is_one_line(
    bad_inputs: BadInputs, tiny_clip_dir: Path, tmp_path: Path, command: str, kind: str
) -> None:
    out = tmp_path / "out"
    if kind == "directory":
        out.with_suffix(".jsonl").mkdir()
    else:
        out.write_text("")
    model = LVLM if command in ("eval", "mine") else str(tiny_clip_dir)
    result = runner.invoke(app, _model_args(command, bad_inputs, tmp_path, model))
    assert result.exit_code == 2, result.output
    assert_one_line_error(result.output, "--out", f"is a {kind}")


# ------------------------------------------------------------------------- inputs that pass


def test_a_bom_file_passes_data_check_retrieve_and_eval(
    bad_inputs: BadInputs, tmp_path: Path
) -> None:
    bom, good = str(bad_inputs.bom), str(bad_inputs.good)
    result = runner.invoke(app, ["data", "check", bom])
    assert result.exit_code == 0 and f"{N_GOOD} examples, all valid" in result.output
    out = tmp_path / "demos.jsonl"
    args = ["retrieve", "--pool", bom, "--queries", bom, "--strategy", "random", "--k", "2"]
    assert runner.invoke(app, [*args, "--out", str(out)]).exit_code == 0
    assert len(out.read_text().splitlines()) == N_GOOD
    task = tmp_path / "task.json"
    task.write_text(json.dumps({"name": "t", "task_type": "vqa", "pool": bom, "queries": good}))
    args = ["eval", "--task-file", str(task), "--model", LVLM, "--out", str(tmp_path / "eval")]
    args += ["--strategy", "random", "--shots", "0,1", "--seeds", "0", "--max-queries", "2"]
    result = runner.invoke(app, [*args, "--bootstrap-resamples", "10"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "eval" / "icl_results.json").is_file()


def test_a_bom_file_passes_embed_run_and_index_build(
    bad_inputs: BadInputs, tiny_clip_dir: Path, tmp_path: Path
) -> None:
    from drum.index import VectorIndex

    bom, model, cache = str(bad_inputs.bom), str(tiny_clip_dir), str(tmp_path / "cache")
    result = runner.invoke(app, ["embed", "run", "--data", bom, "--model", model, "--cache", cache])
    assert result.exit_code == 0, result.output
    args = ["index", "build", "--pool", bom, "--model", model, "--cache", cache]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "index")])
    assert result.exit_code == 0, result.output
    assert VectorIndex.load(tmp_path / "index").ntotal == N_GOOD


def test_a_bom_world_gets_past_validation_in_mine(bad_inputs: BadInputs, tmp_path: Path) -> None:
    # The world is valid, so mine goes on to the model arguments (here, on purpose, missing).
    args = ["mine", "--world", str(bad_inputs.bom_world), "--lvlm", str(tmp_path / "none")]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "drum")])
    assert result.exit_code == 2
    assert_one_line_error(result.output, "--lvlm", "no such directory")


def test_unknown_fields_pass_with_one_warning_line(bad_inputs: BadInputs, tmp_path: Path) -> None:
    records = [json.loads(line) for line in bad_inputs.good.read_text().splitlines()]
    records[2]["answer"] = "typo"
    records[5]["answer"] = "typo"
    records[5]["caption"] = "x"
    path = tmp_path / "extra.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    result = runner.invoke(app, ["data", "check", str(path)])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1
    assert "extra.jsonl:3" in warnings[0] and "['answer', 'caption']" in warnings[0]

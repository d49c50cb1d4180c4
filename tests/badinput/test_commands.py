"""Every command that reads data, with every broken input: exit status 2 and one line naming
the file and line (or the option), never a traceback, and before any model loads.

The broken files come from ``conftest.py`` (built once per session); a file with a UTF-8 BOM
must pass wherever the good file does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drum.cli.main import app
from tests.badinput.conftest import CASES, BadInputs

runner = CliRunner()
NO_MODEL = "/no/such/model"  # data errors must come before any model argument is looked at


def _task_file(root: Path, name: str, pool: Path, queries: Path) -> Path:
    path = root / f"task-{name}.json"
    record = {"name": "t", "task_type": "vqa", "pool": str(pool), "queries": str(queries)}
    path.write_text(json.dumps(record))
    return path


# command -> (arguments for a dataset file, whether the file is a world's vqa pool)
Args = Callable[[BadInputs, str, Path], list[str]]


def _file(bad: BadInputs, case: str) -> Path:
    return bad.files[case]


COMMANDS: dict[str, tuple[Args, bool]] = {
    "data check": (lambda bad, case, tmp: ["data", "check", str(_file(bad, case))], False),
    "embed run": (
        lambda bad, case, tmp: (
            ["embed", "run", "--data", str(_file(bad, case))]
            + ["--model", NO_MODEL, "--cache", str(tmp / "cache")]
        ),
        False,
    ),
    "index build": (
        lambda bad, case, tmp: (
            ["index", "build", "--pool", str(_file(bad, case))]
            + ["--model", NO_MODEL, "--out", str(tmp / "index"), "--cache", str(tmp / "cache")]
        ),
        False,
    ),
    "retrieve --pool": (
        lambda bad, case, tmp: (
            ["retrieve", "--pool", str(_file(bad, case))]
            + ["--queries", str(bad.good), "--strategy", "random", "--k", "2"]
            + ["--out", str(tmp / "demos.jsonl")]
        ),
        False,
    ),
    "retrieve --queries": (
        lambda bad, case, tmp: (
            ["retrieve", "--pool", str(bad.good)]
            + ["--queries", str(_file(bad, case)), "--strategy", "concat", "--model", NO_MODEL]
            + ["--out", str(tmp / "demos.jsonl")]
        ),
        False,
    ),
    "eval --task-file (pool)": (
        lambda bad, case, tmp: (
            ["eval", "--model", NO_MODEL, "--out", str(tmp / "eval")]
            + ["--strategy", "random", "--shots", "0,1", "--task-file"]
            + [str(_task_file(tmp, case, _file(bad, case), bad.good))]
        ),
        False,
    ),
    "eval --task-file (queries)": (
        lambda bad, case, tmp: (
            ["eval", "--model", NO_MODEL, "--out", str(tmp / "eval")]
            + ["--strategy", "random", "--shots", "0,1", "--task-file"]
            + [str(_task_file(tmp, case, bad.good, _file(bad, case)))]
        ),
        False,
    ),
    "eval --world": (
        lambda bad, case, tmp: (
            ["eval", "--model", NO_MODEL, "--out", str(tmp / "eval")]
            + ["--strategy", "random", "--shots", "0,1", "--world", str(bad.worlds[case])]
        ),
        True,
    ),
    "mine": (
        lambda bad, case, tmp: (
            ["mine", "--world", str(bad.worlds[case])]
            + ["--lvlm", NO_MODEL, "--embedder", NO_MODEL, "--out", str(tmp / "drum")]
        ),
        True,
    ),
    "train": (
        lambda bad, case, tmp: (
            ["train", "--world", str(bad.worlds[case])]
            + ["--lvlm", NO_MODEL, "--embedder", NO_MODEL, "--out", str(tmp / "drum")]
        ),
        True,
    ),
    "experiments": (
        lambda bad, case, tmp: (
            ["experiments", "--demo", str(bad.worlds[case].parent)]
            + ["--out", str(tmp / "experiments")]
        ),
        True,
    ),
}


def assert_one_line_error(output: str, *needles: str, after_model_load: bool = False) -> None:
    """Exactly one line, ``error: ...``, holding every needle; no traceback. With
    ``after_model_load``, transformers' "Loading weights" progress lines may precede it."""
    assert "Traceback" not in output, output
    lines = output.strip().splitlines()
    if after_model_load:
        lines = [line for line in lines if "Loading weights" not in line]
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    for needle in needles:
        assert needle in lines[0], (needle, output)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_broken_input_is_one_line_naming_file_and_line(
    bad_inputs: BadInputs, tmp_path: Path, command: str, case: str
) -> None:
    args, in_world = COMMANDS[command]
    result = runner.invoke(app, args(bad_inputs, case, tmp_path))
    assert result.exit_code == 2, result.output
    line, phrase = CASES[case]
    path = bad_inputs.worlds[case] / "vqa" / "pool.jsonl" if in_world else bad_inputs.files[case]
    where = f"{path.name}:{line}" if line is not None else path.name
    needles = [where, str(path.parent)]
    # A task file names a missing pool as its own field; the world names the missing file.
    if not (case == "missing_file" and (in_world or "task-file" in command)):
        needles.append(phrase)
    assert_one_line_error(result.output, *needles)

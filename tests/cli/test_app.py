"""The root ``drum`` app: its subcommands, its entry points, and a fast ``--help``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from drum.cli.main import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


def _python(code: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100"}
    return subprocess.run(
        [sys.executable, *code], capture_output=True, text=True, env=env, cwd=ROOT, check=False
    )


def test_help_lists_the_subcommands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in ("data", "embed", "index", "lvlm", "retrieve", "strategies", "eval", "mine"):
        assert name in result.output
    for name in ("train", "experiments", "demo"):
        assert name in result.output


def test_app_is_the_same_from_every_entry_point() -> None:
    from drum.cli.app import app as root

    assert app is root


def test_python_m_drum_cli_runs_the_app() -> None:
    result = _python(["-m", "drum.cli", "strategies"])
    assert result.returncode == 0, result.stderr
    assert "concat" in result.stdout.split()


def test_help_imports_no_torch_nor_config_modules() -> None:
    # Option defaults come from config dataclasses whose modules import torch and
    # transformers; building the CLI for `drum --help` must not import them.
    code = (
        "import sys; from typer.testing import CliRunner; from drum.cli.main import app; "
        "assert CliRunner().invoke(app, ['--help']).exit_code == 0; "
        "assert CliRunner().invoke(app, ['lvlm', '--help']).exit_code == 0; "
        "heavy = {'torch', 'transformers', 'drum.finetune.config', 'drum.builtin.lvlm.train'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    result = _python(["-c", code])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_command_help_shows_its_config_default() -> None:
    result = runner.invoke(app, ["lvlm", "train-builtin", "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0
    assert "[default: 420.0]" in result.output  # BuiltinLVLMConfig.max_seconds

"""``drum eval``: result tables (rich in a terminal, markdown in a pipe) and ``--adapter``."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from rich.table import Table

from drum.cli.common import show_tables


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_pipe_gets_the_markdown(capsys: pytest.CaptureFixture[str]) -> None:
    show_tables("| strategy | 1-shot |", Table("never shown"))
    assert capsys.readouterr().out == "| strategy | 1-shot |\n"


def test_a_terminal_gets_the_rich_table(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    table = Table("strategy", "1-shot")
    table.add_row("concat", "0.571 [.51,.63]")
    show_tables("| markdown |", table)
    assert "0.571 [.51,.63]" in terminal.getvalue()
    assert "| markdown |" not in terminal.getvalue()


def test_eval_puts_a_vpgc_adapter_on_the_model(
    tiny_world: Path, tiny_llava_dir: Path, tmp_path: Path
) -> None:
    import json

    import torch
    from typer.testing import CliRunner

    from drum.adapters.vpgc import VPGCLVLM, VPGCConfig
    from drum.cli.main import app
    from drum.lvlm.hf import HFLVLM

    model = VPGCLVLM(HFLVLM(tiny_llava_dir), VPGCConfig(num_heads=1, hidden_size=8))
    with torch.no_grad():
        for parameter in model.trainable_parameters():
            parameter.normal_(0, 0.5)  # not the zero init: the adapter changes the model
    model.save_adapter(tmp_path / "adapter")
    args = ["eval", "--world", str(tiny_world), "--model", str(tiny_llava_dir), "--task", "vqa"]
    args += ["--strategy", "random", "--shots", "1", "--seeds", "0", "--max-queries", "3"]
    runs = {}
    for name, extra in (("plain", []), ("adapted", ["--adapter", str(tmp_path / "adapter")])):
        result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / name), *extra])
        assert result.exit_code == 0, result.output
        runs[name] = json.loads((tmp_path / name / "icl_results.json").read_text())
    fingerprints = {name: run["config"]["lvlm"]["fingerprint"] for name, run in runs.items()}
    assert fingerprints["adapted"] != fingerprints["plain"]

    missing = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "x"), "--adapter", "nope"])
    assert missing.exit_code == 2 and "no such adapter directory" in missing.output

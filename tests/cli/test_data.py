"""``drum data``: dataset checks."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from drum.cli.main import app

runner = CliRunner()


def test_data_check_reports_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "images": ["nowhere.png"], "text": "t", "answers": ["x"]}\n')
    result = runner.invoke(app, ["data", "check", str(bad)])
    assert result.exit_code == 2
    assert "bad.jsonl:1" in result.output and "missing field" in result.output
    bad.write_text("{oops\n")
    result = runner.invoke(app, ["data", "check", str(bad)])
    assert result.exit_code == 2
    assert "bad.jsonl:1" in result.output and "malformed JSON" in result.output

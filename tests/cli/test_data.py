"""``drum data``: dataset checks."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from drum.cli.main import app

runner = CliRunner()


def test_data_check_reports_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"id": "a", "images": [], "text": "t", "answers": ["x"], "task": "vqa"}\n{oops\n'
    )
    result = runner.invoke(app, ["data", "check", str(bad)])
    assert result.exit_code == 2
    assert "bad.jsonl:2" in result.output and "malformed JSON" in result.output

"""``drum data``: dataset checks."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from drum.cli.main import app
from tests.data.big_png import write_big_png
from tests.data.importers.fixtures import write_answerless

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


def test_data_check_counts_examples_without_answers_and_refuses_them_in_a_pool(
    tiny_world: Path, tmp_path: Path
) -> None:
    path = write_answerless(tiny_world / "vqa" / "pool.jsonl", tmp_path / "test.jsonl")
    result = runner.invoke(app, ["data", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert "3 examples, all valid; 2 without answers" in result.output
    result = runner.invoke(app, ["data", "check", "--pool", str(path)])
    assert result.exit_code == 2
    assert "test.jsonl:2: example" in result.output and "has no answers" in result.output
    full = tiny_world / "vqa" / "pool.jsonl"
    result = runner.invoke(app, ["data", "check", "--pool", str(full)])
    assert result.exit_code == 0 and "without answers" not in result.output


def test_data_check_reports_a_decompression_bomb_as_too_large(tmp_path: Path) -> None:
    write_big_png(tmp_path / "big.png", 20000, 20000)
    data = tmp_path / "data.jsonl"
    data.write_text('{"id": "a", "images": ["big.png"], "text": "t", "answers": ["x"], '
                    '"task": "vqa"}\n')  # fmt: skip
    result = runner.invoke(app, ["data", "check", str(data)])
    assert result.exit_code == 2
    assert "data.jsonl:1: image too large" in result.output
    assert "400000000 pixels is over the limit of 67108864" in " ".join(result.output.split())
    assert "corrupt" not in result.output and "Traceback" not in result.output

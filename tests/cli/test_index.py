"""``drum index build``."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from drum.cli.main import app

runner = CliRunner()


def test_index_build_saves_an_index(tiny_world: Path, tiny_clip_dir: Path, tmp_path: Path) -> None:
    from drum.index import VectorIndex

    out = tmp_path / "index"
    result = runner.invoke(
        app,
        [
            "index",
            "build",
            "--pool",
            str(tiny_world / "vqa" / "pool.jsonl"),
            "--model",
            str(tiny_clip_dir),
            "--out",
            str(out),
            "--cache",
            str(tmp_path / "cache"),
        ],
    )
    assert result.exit_code == 0, result.output
    index = VectorIndex.load(out)
    assert index.ntotal == 60 and index.meta["strategy"] == "concat"


def test_index_build_refuses_a_pool_without_answers(tiny_world: Path, tmp_path: Path) -> None:
    from tests.data.importers.fixtures import write_answerless

    pool = write_answerless(tiny_world / "vqa" / "pool.jsonl", tmp_path / "test.jsonl")
    args = ["index", "build", "--pool", str(pool), "--model", str(tmp_path / "no-model")]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "index")])
    assert result.exit_code == 2  # before the model argument is even looked at
    assert "test.jsonl:2: example" in result.output and "has no answers" in result.output

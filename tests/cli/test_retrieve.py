"""``drum retrieve``: demonstrations per query as JSONL."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from drum.cli.main import app

runner = CliRunner()


def test_retrieve_writes_demos_per_query(
    tiny_world: Path, tiny_clip_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "demos.jsonl"
    result = runner.invoke(
        app,
        [
            "retrieve",
            "--pool",
            str(tiny_world / "vqa" / "pool.jsonl"),
            "--queries",
            str(tiny_world / "vqa" / "val.jsonl"),
            "--model",
            str(tiny_clip_dir),
            "--strategy",
            "concat",
            "--k",
            "3",
            "--out",
            str(out),
            "--cache",
            str(tmp_path / "cache"),
        ],
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 24
    assert all(len(r["demos"]) == 3 for r in records)
    scores = [d["score"] for d in records[0]["demos"]]
    assert scores == sorted(scores)  # most similar last


def test_random_strategy_needs_no_model(tiny_world: Path, tmp_path: Path) -> None:
    out = tmp_path / "random.jsonl"
    args = [
        "retrieve",
        "--pool",
        str(tiny_world / "vqa" / "pool.jsonl"),
        "--queries",
        str(tiny_world / "vqa" / "val.jsonl"),
        "--strategy",
        "random",
        "--out",
        str(out),
    ]
    assert runner.invoke(app, args).exit_code == 0
    assert len(out.read_text().splitlines()) == 24


def test_similarity_strategy_without_model_is_a_clear_error(
    tiny_world: Path, tmp_path: Path
) -> None:
    args = [
        "retrieve",
        "--pool",
        str(tiny_world / "vqa" / "pool.jsonl"),
        "--queries",
        str(tiny_world / "vqa" / "val.jsonl"),
        "--strategy",
        "image",
        "--out",
        str(tmp_path / "o.jsonl"),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "needs --model" in result.output

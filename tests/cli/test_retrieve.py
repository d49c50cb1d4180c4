"""``drum retrieve``: demonstrations per query as JSONL."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from drum.cli.main import app
from tests.data.importers.fixtures import write_answerless

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


def test_queries_without_answers_are_retrieved_for_but_a_pool_needs_answers(
    tiny_world: Path, tmp_path: Path
) -> None:
    answerless = write_answerless(tiny_world / "vqa" / "val.jsonl", tmp_path / "test.jsonl", 0)
    out = tmp_path / "random.jsonl"
    args = ["retrieve", "--strategy", "random", "--k", "2", "--out", str(out)]
    pool = ["--pool", str(tiny_world / "vqa" / "pool.jsonl")]
    result = runner.invoke(app, [*args, *pool, "--queries", str(answerless)])
    assert result.exit_code == 0, result.output
    assert [len(json.loads(line)["demos"]) for line in out.read_text().splitlines()] == [2] * 3
    result = runner.invoke(app, [*args, "--pool", str(answerless), "--queries", str(answerless)])
    assert result.exit_code == 2
    assert "test.jsonl:1: example" in result.output and "has no answers" in result.output


def test_k_above_the_pool_left_once_the_query_is_excluded_is_one_line_before_embedding(
    tiny_world: Path, tmp_path: Path, monkeypatch
) -> None:
    import drum.cli.retrieve

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the embedder loaded before k was checked")

    monkeypatch.setattr(drum.cli.retrieve, "load_embedder", never)
    pool = tiny_world / "vqa" / "pool.jsonl"
    size = len(pool.read_text().splitlines())
    out = tmp_path / "demos.jsonl"
    args = ["retrieve", "--pool", str(pool), "--queries", str(pool), "--out", str(out)]
    args += ["--k", str(size), "--model", "unused/model", "--strategy", "concat"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert f"k={size}" in result.output and "remain after excluding the query" in result.output
    assert not out.exists()


def test_a_joint_instruction_needs_a_joint_strategy(tiny_world: Path, tmp_path: Path) -> None:
    args = ["retrieve", "--pool", str(tiny_world / "vqa" / "pool.jsonl")]
    args += ["--queries", str(tiny_world / "vqa" / "val.jsonl"), "--strategy", "random"]
    args += ["--out", str(tmp_path / "r.jsonl"), "--joint-instruction", "what color"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "--joint-instruction: no strategy of 'random' embeds joint vectors" in result.output
    assert not (tmp_path / "r.jsonl").exists()

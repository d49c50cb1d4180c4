"""``drum train`` / ``drum mine``: one job, defaults differ only in the number of rounds."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from drum.cli.main import app


def test_train_runs_one_round_of_mining(
    tiny_world: Path, tiny_clip_dir: Path, tiny_llava_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "drum"
    args = ["--world", str(tiny_world), "--lvlm", str(tiny_llava_dir)]
    args += ["--embedder", str(tiny_clip_dir), "--out", str(out)]
    args += ["--queries-per-task", "4", "--candidates", "8", "--epochs", "1"]
    result = CliRunner().invoke(app, ["train", *args])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "mining.json").read_text())
    assert [r["round"] for r in summary["rounds"]] == [0, 1]
    assert summary["config"]["mining"]["rounds"] == 1


def test_mine_reports_a_bad_config_clearly(tiny_world: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["mine", "--world", str(tiny_world), "--relevance", "vibes", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "relevance must be one of" in result.output


def test_mine_refuses_a_pool_without_answers_before_loading_models(
    tiny_world: Path, tmp_path: Path
) -> None:
    import shutil

    from tests.data.importers.fixtures import write_answerless

    world = tmp_path / "world"
    shutil.copytree(tiny_world, world)
    write_answerless(world / "vqa" / "pool.jsonl", world / "vqa" / "pool.jsonl")
    args = ["mine", "--world", str(world), "--lvlm", str(tmp_path / "no-lvlm")]
    result = CliRunner().invoke(
        app, [*args, "--embedder", str(tmp_path / "no-embedder"), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2
    assert "pool.jsonl:2: example" in result.output and "has no answers" in result.output

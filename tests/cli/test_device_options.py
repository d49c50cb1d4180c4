"""``--device`` / ``--dtype`` on the model-running commands: bad values exit 2 before any model
loads; ``--dtype bf16`` embeds under its own fingerprint."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drum.cli.main import app

runner = CliRunner()


def _embed(tiny_world: Path, model: Path, cache: Path, *extra: str):  # type: ignore[no-untyped-def]
    data = str(tiny_world / "vqa" / "pool.jsonl")
    args = ["embed", "run", "--data", data, "--model", str(model), "--cache", str(cache)]
    return runner.invoke(app, [*args, *extra])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--dtype", "bf17"], "--dtype must be one of auto, fp32, bf16, fp16, got 'bf17'"),
        (["--device", "gpu"], "--device must be cpu, cuda or cuda:<index>, got 'gpu'"),
        (["--device", "cpu:1"], "--device must be cpu, cuda or cuda:<index>, got 'cpu:1'"),
    ],
)
def test_bad_device_or_dtype_is_one_clear_error(
    tiny_world: Path, tmp_path: Path, extra: list[str], message: str
) -> None:
    # A model path that does not exist: the option is refused before the model is looked at.
    result = _embed(tiny_world, tmp_path / "no-model", tmp_path / "cache", *extra)
    assert result.exit_code == 2
    assert message in result.output


def test_mine_refuses_a_bad_device(tiny_world: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["mine", "--world", str(tiny_world), "--out", str(tmp_path / "m"), "--device", "tpu"],
    )
    assert result.exit_code == 2 and "--device must be cpu, cuda" in result.output


def test_bf16_vectors_are_cached_apart_from_fp32_ones(
    tiny_world: Path, tiny_clip_dir: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    first = _embed(tiny_world, tiny_clip_dir, cache)
    assert first.exit_code == 0 and "104 embedded now" in first.output  # distinct keys
    result = _embed(tiny_world, tiny_clip_dir, cache, "--dtype", "bf16")
    assert result.exit_code == 0, result.output
    assert "104 embedded now" in result.output  # nothing of the fp32 run is served to bf16
    with sqlite3.connect(cache / "embeddings.sqlite") as db:
        fingerprints = {row[0] for row in db.execute("SELECT fingerprint FROM stores")}
    assert len(fingerprints) == 2

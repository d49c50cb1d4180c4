"""``drum embed run`` over 2 processes: the cache one process writes, and resume from parts."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from drum.cli.main import app
from drum.data.images import ImageInput
from drum.data.jsonl import read_examples
from drum.embed.base import Embedder
from drum.embed.cache import EmbeddingCache
from drum.embed.hf import HFDualEncoder
from drum.embed.sharded import embed_dataset
from drum.testing import spawn_ranks
from drum.utils.distributed import DistContext, part_path

runner = CliRunner()


@pytest.fixture(scope="module")
def dataset(tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every VQA and caption example of the tiny world (108 distinct images: two batches of
    64, so each of 2 ranks embeds one), image paths made absolute."""
    rows = []
    for task in ("vqa", "caption"):
        for split in ("pool", "val", "test"):
            path = tiny_world / task / f"{split}.jsonl"
            for line in path.read_text().splitlines():
                row = json.loads(line)
                row["images"] = [str((path.parent / image).resolve()) for image in row["images"]]
                rows.append(row)
    out = tmp_path_factory.mktemp("sharded") / "all.jsonl"
    out.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return out


def _cache_content(directory: Path) -> tuple[list, dict[str, bytes]]:
    """The cache's key table and vector files, exactly."""
    with sqlite3.connect(directory / "embeddings.sqlite") as db:
        stores = db.execute("SELECT id, fingerprint, modality, dim, rows FROM stores").fetchall()
        keys = db.execute("SELECT store, row, key FROM keys ORDER BY store, row").fetchall()
    files = {p.name: p.read_bytes() for p in sorted(directory.glob("vectors-*.f32"))}
    return [stores, keys], files


@pytest.mark.slow
def test_two_processes_write_exactly_the_cache_one_process_writes(
    dataset: Path, tiny_clip_dir: Path, tmp_path: Path
) -> None:
    common = ["embed", "run", "--data", str(dataset), "--model", str(tiny_clip_dir)]
    single = runner.invoke(app, [*common, "--cache", str(tmp_path / "one")])
    assert single.exit_code == 0, single.output
    root = str(Path(__file__).resolve().parents[2])  # the checkout: its drum, whatever the cwd
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": root}
    launched = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
        + ["-m", "drum.cli", *common, "--cache", str(tmp_path / "two")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert "embedded now" in launched.stderr
    one, two = _cache_content(tmp_path / "one"), _cache_content(tmp_path / "two")
    assert one[0][0][0][4] == 108  # images: 108 rows, two batches of 64
    assert one == two  # same keys in the same rows, vector files equal byte for byte
    assert not (tmp_path / "two.parts").exists()  # merged parts are deleted


class _CountingEmbedder(Embedder):
    """An ``HFDualEncoder`` that logs each embedding call to ``log``; with ``fail`` it raises
    on its first image batch once rank 0's image part exists (a rank killed mid-run)."""

    def __init__(self, model: Path, log: Path, fail: bool) -> None:
        self.inner, self.log, self.fail = HFDualEncoder(model), log, fail

    @property
    def dim(self) -> int:
        return self.inner.dim

    @property
    def fingerprint(self) -> str:
        return self.inner.fingerprint

    def _record(self, what: str, count: int) -> None:
        with self.log.open("a") as handle:
            handle.write(f"{what} {count}\n")

    def embed_images(
        self, images: Sequence[ImageInput], batch_size: int = 64, progress: bool = False
    ) -> np.ndarray:
        self._record("image", len(images))
        if self.fail:
            other = part_path(self.log.parent / "cache", 0, 2, "image.safetensors")
            deadline = time.monotonic() + 120
            while not other.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            raise RuntimeError("rank killed")
        return self.inner.embed_images(images, batch_size, progress)

    def embed_texts(
        self, texts: Sequence[str], batch_size: int = 256, progress: bool = False
    ) -> np.ndarray:
        self._record("text", len(texts))
        return self.inner.embed_texts(texts, batch_size, progress)


def _embed_rank(dataset: Path, model: Path, out: Path, fail_rank: int | None) -> None:
    context = DistContext.from_env()
    log = out / f"calls-rank-{context.rank}.txt"
    embedder = _CountingEmbedder(model, log, fail=context.rank == fail_rank)
    examples = read_examples(dataset, verify_images=False)
    embed_dataset(examples, embedder, EmbeddingCache(out / "cache"), context)


@pytest.mark.slow
def test_a_rerun_after_a_killed_rank_keeps_the_parts_already_written(
    dataset: Path, tiny_clip_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(Exception, match="rank killed"):
        spawn_ranks(_embed_rank, 2, dataset, tiny_clip_dir, tmp_path, 1)
    part = part_path(tmp_path / "cache", 0, 2, "image.safetensors")
    assert part.is_file() and not part_path(tmp_path / "cache", 1, 2, "image.safetensors").exists()
    written = part.stat().st_mtime_ns
    rank0_calls = (tmp_path / "calls-rank-0.txt").read_text()
    spawn_ranks(_embed_rank, 2, dataset, tiny_clip_dir, tmp_path, None)
    # Rank 0 embedded nothing more: its parts were reused; rank 1 embedded its share again.
    assert (tmp_path / "calls-rank-0.txt").read_text() == rank0_calls
    # (Rank 1's share: the second image batch, 108 - 64 = 44, and the one text batch.)
    assert (tmp_path / "calls-rank-1.txt").read_text().splitlines()[-2][:8] == "image 44"
    assert not part.exists() and written  # merged, then deleted
    # The merged cache is the one a single process writes.
    reference = EmbeddingCache(tmp_path / "reference")
    examples = read_examples(dataset, verify_images=False)
    embed_dataset(examples, HFDualEncoder(tiny_clip_dir), reference, DistContext())
    assert _cache_content(tmp_path / "cache") == _cache_content(tmp_path / "reference")

"""The embedding cache alone: warm lookups of a large batch, and filling it by small appends.

No model: a table embedder returns fixed random unit rows (``--dim`` float32), so only the
cache is timed. Rows:

* **warm, fresh object**: one ``embed_texts`` of ``--n`` stored keys from a new
  ``EmbeddingCache`` on the filled directory (what a new process pays: open, read, assemble);
* **warm, same object**: the same call again on that object;
* **cold fill**: ``--fill-n`` new keys stored in appends of ``--batch`` (many small writers'
  pattern), on an empty directory.

With ``--baseline-ref REF`` the same cases also run on ``drum/embed/cache.py`` as it was at git
``REF`` (loaded from ``git show``), timings alternated with the current cache's, and each row
gets ``vs_baseline`` = current time / baseline time. Every case checks that the returned vectors
are bit-identical to the embedder's.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from common import REPO_ROOT, report

import drum.embed.cache
from drum.embed.base import Embedder


class TableEmbedder(Embedder):
    """Text ``"item <i>"`` -> row ``i`` of a fixed random unit matrix."""

    def __init__(self, n: int, dim: int) -> None:
        rows = np.random.default_rng(0).standard_normal((n, dim)).astype(np.float32)
        self.rows = rows / np.linalg.norm(rows, axis=1, keepdims=True)

    @property
    def dim(self) -> int:
        return self.rows.shape[1]

    @property
    def fingerprint(self) -> str:
        return f"table-{self.rows.shape}"

    def embed_images(
        self, images: Sequence, batch_size: int = 64, progress: bool = False
    ) -> np.ndarray:
        raise NotImplementedError

    def embed_texts(
        self, texts: Sequence[str], batch_size: int = 256, progress: bool = False
    ) -> np.ndarray:
        return self.rows[[int(text.split()[1]) for text in texts]].reshape(-1, self.dim)


def _module_at(ref: str, workdir: Path) -> ModuleType:
    source = subprocess.run(
        ["git", "show", f"{ref}:drum/embed/cache.py"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = workdir / "baseline_cache.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("baseline_cache", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _seconds(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _warm(
    cache: Any, embedder: Embedder, texts: list[str], expected: np.ndarray
) -> tuple[float, float]:
    """Seconds of a first and a second ``embed_texts`` of stored ``texts`` on ``cache``."""
    started = time.perf_counter()
    first = cache.embed_texts(embedder, texts)
    middle = time.perf_counter()
    second = cache.embed_texts(embedder, texts)
    done = time.perf_counter()
    assert np.array_equal(first, expected) and np.array_equal(second, expected)
    assert first.dtype == np.float32 and cache.misses == 0
    return middle - started, done - middle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (smoke run)")
    parser.add_argument("--n", type=int, default=20_000, help="keys in the warm lookup")
    parser.add_argument("--fill-n", type=int, default=5_000, help="keys in the cold fill")
    parser.add_argument("--batch", type=int, default=100, help="keys per append in the fill")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline-ref", help="git ref whose cache.py to time side by side")
    args = parser.parse_args()
    if args.quick:
        args.n, args.fill_n, args.repeat = 2_000, 500, 2

    embedder = TableEmbedder(max(args.n, args.fill_n), args.dim)
    texts = [f"item {i}" for i in range(args.n)]
    fill = [f"item {i}" for i in range(args.fill_n)]
    expected, expected_fill = embedder.embed_texts(texts), embedder.embed_texts(fill)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        modules = {"current": drum.embed.cache}
        if args.baseline_ref:
            modules["baseline"] = _module_at(args.baseline_ref, workdir)
        best: dict[tuple[str, str], float] = {}

        def record(case: str, name: str, seconds: float) -> None:
            best[case, name] = min(best.get((case, name), float("inf")), seconds)

        for name, module in modules.items():
            module.EmbeddingCache(workdir / name).embed_texts(embedder, texts)
        for trial in range(args.repeat):
            for name, module in modules.items():  # alternated: load hits both sides alike
                fresh, same = _warm(
                    module.EmbeddingCache(workdir / name), embedder, texts, expected
                )
                record("warm, fresh object", name, fresh)
                record("warm, same object", name, same)
                filled = module.EmbeddingCache(workdir / f"{name}-fill-{trial}")

                def fill_all(filled=filled) -> None:
                    for start in range(0, len(fill), args.batch):
                        filled.embed_texts(embedder, fill[start : start + args.batch])

                record("cold fill", name, _seconds(fill_all))
                again = module.EmbeddingCache(workdir / f"{name}-fill-{trial}")
                assert np.array_equal(again.embed_texts(embedder, fill), expected_fill)

    rows = []
    for case, keys in (
        ("warm, fresh object", args.n),
        ("warm, same object", args.n),
        ("cold fill", args.fill_n),
    ):
        row = {"case": case, "keys": keys, "seconds": best[case, "current"]}
        row["keys_per_s"] = keys / row["seconds"]
        if "baseline" in modules:
            row["baseline_seconds"] = best[case, "baseline"]
            row["vs_baseline"] = row["seconds"] / row["baseline_seconds"]
        rows.append(row)
    report(
        "embed_cache_quick" if args.quick else "embed_cache",
        rows,
        {
            "n": args.n,
            "fill_n": args.fill_n,
            "batch": args.batch,
            "dim": args.dim,
            "repeat": args.repeat,
            "baseline_ref": args.baseline_ref,
            "vectors_identical": True,  # asserted above for every case
        },
    )


if __name__ == "__main__":
    main()

"""``benchmarks/bench_serve.py --smoke``: ``drum serve`` with ``--max-batch-size`` 1 vs 16 on
the built-in LVLM, run as a user would run it, so that it keeps working: one at a time runs a
pass per request, batched fewer, and the scores of both sides agree."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.benchmarks.runner import run_benchmark


@pytest.mark.slow
def test_smoke_run_batches_and_agrees(tmp_path: Path) -> None:
    result = run_benchmark("bench_serve.py", "--smoke", "--world", str(tmp_path / "world"))
    alone, batched = result["rows"]
    meta = result["meta"]
    assert meta["max_abs_difference"] <= meta["tolerance"] == 1e-4
    assert alone["max_batch_size"] == 1 and batched["max_batch_size"] == 16
    assert alone["requests"] == batched["requests"] == 2 * meta["prompts"] > 0
    assert alone["batches"] == alone["passes"] == alone["requests"]
    assert alone["largest_batch"] == 1 and alone["speedup"] == 1
    assert batched["batches"] < batched["requests"] and batched["largest_batch"] > 1
    assert batched["requests/s"] > 0 and batched["speedup"] > 0

"""``benchmarks/bench_prefix.py --quick``: the shared-prefix benchmark on a small generated
world, run as a user would run it, so that it keeps working (issue 24)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.benchmarks.runner import run_benchmark


@pytest.mark.slow
def test_quick_run_scores_both_sides_alike_and_shares_prefixes(tmp_path: Path) -> None:
    result = run_benchmark("bench_prefix.py", "--quick", "--world", str(tmp_path / "world"))
    today, shared = result["rows"]
    meta = result["meta"]
    assert meta["max_abs_difference"] <= meta["tolerance"] == 1e-4
    assert today["prompts"] == shared["prompts"] > 0
    # Candidates repeat across the queries, each repeated one's prefix runs once or so.
    assert 0 < meta["reuse"]["reuse"] < 1
    assert 0 < shared["prefixes_run"] <= meta["reuse"]["distinct_demonstrations"]
    assert today["prefixes_run"] == 0
    assert shared["tokens"] < today["tokens"]
    assert shared["speedup"] > 0 and today["speedup"] == 1

"""``benchmarks/bench_feature_cache.py --quick``: the image-feature cache on vs off on the tiny
Qwen2-VL, run as a user would run it, so that it keeps working."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "bench_feature_cache.py"


@pytest.mark.slow
def test_quick_run_scores_alike_and_encodes_each_image_once() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    result = json.loads("\n".join(lines[lines.index("{") :]))  # the JSON follows the table
    cached, uncached = result["rows"]
    meta = result["meta"]
    assert meta["max_abs_difference"] <= meta["tolerance"] == 1e-5
    assert cached["prompts"] == uncached["prompts"] > 0
    # Repeated images: the cached side runs fewer patches through the vision tower.
    assert 0 < cached["patches_encoded"] < uncached["patches_encoded"]
    assert meta["distinct_images"] < cached["images_in_prompts"]

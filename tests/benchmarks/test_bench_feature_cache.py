"""``benchmarks/bench_feature_cache.py --quick``: the image-feature cache on vs off on the tiny
Qwen2-VL, run as a user would run it, so that it keeps working."""

from __future__ import annotations

import pytest

from tests.benchmarks.runner import run_benchmark


@pytest.mark.slow
def test_quick_run_scores_alike_and_encodes_each_image_once() -> None:
    result = run_benchmark("bench_feature_cache.py", "--quick")
    cached, uncached = result["rows"]
    meta = result["meta"]
    assert meta["max_abs_difference"] <= meta["tolerance"] == 1e-5
    assert cached["prompts"] == uncached["prompts"] > 0
    # Repeated images: the cached side runs fewer patches through the vision tower.
    assert 0 < cached["patches_encoded"] < uncached["patches_encoded"]
    assert meta["distinct_images"] < cached["images_in_prompts"]

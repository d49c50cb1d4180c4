"""``benchmarks/bench_gpu.py --smoke``: the GPU benchmark's code path on tiny configs on the CPU,
so that the script the GPU run needs keeps working (issue 24)."""

from __future__ import annotations

import functools
import importlib.util
import os
import subprocess
import sys
from types import ModuleType

import pytest

from tests.benchmarks.runner import REPO, run_benchmark

SCRIPT = REPO / "benchmarks" / "bench_gpu.py"
EXPECTED_ROWS = {
    ("embed", "CLIP ViT-L/14 (tiny)"),
    ("embed", "SigLIP so400m (tiny)"),
    ("score", "LLaVA-1.5-7B (tiny)"),
    ("generate", "LLaVA-1.5-7B (tiny)"),
    ("score", "Qwen2.5-VL-7B (tiny)"),
    ("generate", "Qwen2.5-VL-7B (tiny)"),
    ("VPG-C train step", "BLIP-2 Vicuna-7B (tiny)"),
}


@functools.cache
def _gpu_measure() -> ModuleType:
    """``benchmarks/gpu_measure.py`` (a script's sibling, not a package module)."""
    spec = importlib.util.spec_from_file_location(
        "bench_gpu_measure", SCRIPT.with_name("gpu_measure.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def smoke() -> dict:
    """The JSON ``--smoke`` prints (after its table), run as a user would run it."""
    return run_benchmark("bench_gpu.py", "--smoke", "--peak-tflops", "1")


@pytest.mark.slow
def test_every_drum_number_has_its_positive_baseline(smoke: dict) -> None:
    rows = smoke["rows"]
    assert {(row["case"], row["model"]) for row in rows} == EXPECTED_ROWS
    for row in rows:
        assert row["drum"] > 0 and row["baseline"] > 0, row
        # speedup = baseline time / DRUM time: the rate ratio, or the inverse time ratio.
        ratio = (
            row["baseline"] / row["drum"]
            if row["unit"] == "s/step"
            else row["drum"] / row["baseline"]
        )
        assert row["speedup"] == pytest.approx(ratio)
    for row in (row for row in rows if row["case"] in ("embed", "score", "generate")):
        assert 0 < row["drum_mfu"] < 1 and 0 < row["baseline_mfu"] < 1, row
    for row in (row for row in rows if row["case"] == "score"):
        assert row["drum_tokens_s"] > 0 and row["baseline_tokens_s"] > 0, row


@pytest.mark.slow
def test_both_sides_compute_the_same_thing(smoke: dict) -> None:
    details = smoke["meta"]["details"]
    # float32 on the CPU: DRUM's batched s(c) and the plain loop's agree, as do the embeddings.
    for key in ("score:llava", "score:qwen", "embed:clip", "embed:siglip"):
        assert details[key]["max_abs_difference"] < 1e-4, key
    # DRUM encodes a recurring candidate image once (LLaVA's feature cache); the loop each time.
    tokens = details["score:llava"]["vision_tokens"]
    assert 0 < tokens["drum"] < tokens["baseline"]
    train = details["VPG-C train step:blip2"]
    assert train["drum_saved_activation_gib"] > 0 and train["baseline_saved_activation_gib"] > 0
    assert train["drum_peak_gib"] is None  # device memory is CUDA's alone
    assert 0 < train["adapter_parameters"]


@pytest.mark.slow
def test_the_meta_states_device_peak_and_formula(smoke: dict) -> None:
    meta = smoke["meta"]
    assert meta["smoke"] is True and meta["device"] == "cpu" and meta["dtype"] == "torch.float32"
    assert meta["failures"] == {}
    assert meta["peak_tflops"] == 1 and meta["peak_source"] == "--peak-tflops"
    assert "2 x N_lm x T" in meta["flops_formula"]
    assert set(meta["models"]) == {"clip", "siglip", "llava", "qwen", "blip2"}
    assert all(model["parameters"] > 0 for model in meta["models"].values())


@pytest.mark.parametrize(
    ("name", "peak"),
    [
        ("NVIDIA H100 80GB HBM3", 989.0),
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA H100 NVL", 835.0),
        ("NVIDIA H200", 989.0),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA A100 80GB PCIe", 312.0),
        ("NVIDIA L40S", 362.0),
        ("NVIDIA L4", 121.0),
        ("Tesla T4", None),
    ],
)
def test_peaks_are_looked_up_by_card_name(name: str, peak: float | None) -> None:
    assert _gpu_measure().peak_tflops(name) == peak


@pytest.mark.slow
def test_a_full_run_without_cuda_is_skipped_not_failed() -> None:
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is here")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(SCRIPT)], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 77, done.stderr[-2000:]
    assert "skipped, no CUDA device" in done.stderr

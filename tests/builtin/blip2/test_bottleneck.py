"""``make vpgc-blip2`` end to end on a tiny base and a few steps: every column and group in
the results, in-domain scores, the diagnostics; the queries-only arm changes only the query
tokens; a rerun reuses everything."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from drum.builtin.blip2.data import EditedPairsConfig, HeldoutConfig
from drum.pipelines.vpgc_bottleneck import (
    RESULTS,
    BottleneckArm,
    BottleneckConfig,
    run_vpgc_bottleneck,
)
from tests.builtin.blip2.conftest import TINY


@pytest.mark.slow
def test_the_measurement_runs_end_to_end(tiny_blip2_run: Path, tmp_path: Path) -> None:
    arms = (BottleneckArm("vpgc"), BottleneckArm("vpgc", region="random"), BottleneckArm("lora"),
            BottleneckArm("queries"), BottleneckArm("vpgc", data="heldout"))  # fmt: skip
    config = BottleneckConfig(
        arms=arms,
        train=replace(
            BottleneckConfig().train, max_steps=3, checkpoint_every=3, log_every=3, batch_size=4
        ),  # fmt: skip
        pairs=EditedPairsConfig(n_train=6, n_test=4),
        heldout=HeldoutConfig(n_test=8, n_train=4),
        base=TINY,
        bootstrap_resamples=20,
        require_gates=False,
    )
    out = tmp_path / "out"
    # The tiny base trained by the fixture stands in for the shipped one.
    (out / "base_training").parent.mkdir(parents=True)
    (out / "base_training").symlink_to(tiny_blip2_run, target_is_directory=True)
    results = run_vpgc_bottleneck(out, config, progress=False)
    columns = results["columns"]
    assert list(columns) == ["base", "stage A (ceiling)", "VPG-C", "VPG-C (random regions)",
                             "LoRA", "queries only", "VPG-C on held-out tasks"]  # fmt: skip
    assert set(columns["VPG-C"]["categories"]) == {"primary", "near", "far"}
    assert set(results["in_domain"]) == {"attention-s0", "random-s0"}
    assert set(results["diagnostics"]) >= {"residual_norm", "probe", "attention_on_small_object"}
    assert (out / "vpgc_bottleneck.md").is_file() and (out / "vpgc_bottleneck.png").is_file()
    # The queries-only arm: the base's weights but for its query tokens.
    base = load_file(str(tiny_blip2_run / "stage_b" / "model.safetensors"))
    tuned = load_file(str(out / "arms" / "queries-attention-synthetic-s0" / "model.safetensors"))
    assert {n for n in base if not torch.equal(base[n], tuned[n])} == {"query_tokens"}
    stamp = (out / RESULTS).stat().st_mtime_ns
    again = run_vpgc_bottleneck(out, config, progress=False)
    assert again["columns"] == json.loads((out / RESULTS).read_text())["columns"]
    assert (out / RESULTS).stat().st_mtime_ns != stamp  # rewritten from reused parts

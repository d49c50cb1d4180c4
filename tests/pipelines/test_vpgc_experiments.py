"""The VPG-C experiment pipeline: arm naming, seed-averaged groups with intervals, categories,
and the rendered table."""

from __future__ import annotations

import pytest

from drum.pipelines.vpgc_experiments import (
    FULL_ARMS,
    REDUCED_ARMS,
    VPGCArm,
    VPGCExperimentConfig,
    markdown_table,
    summarise_groups,
)

CARD = {
    "tasks": {
        "A": {"category": "c1"},
        "B": {"category": "c1"},
        "C": {"category": "c2"},
    }
}


def test_arm_names_and_groups() -> None:
    assert VPGCArm().name == "vpgc-attention-s0"
    assert VPGCArm("vpgc", "random", 3, 2).name == "vpgc-random-L3-s2"
    assert VPGCArm("lora").group == "lora"
    assert len({arm.name for arm in FULL_ARMS}) == len(FULL_ARMS)
    groups = {arm.group for arm in REDUCED_ARMS}
    assert groups == {"vpgc-attention", "vpgc-random", "projector", "lora",
                      "vpgc-attention-L1", "vpgc-attention-L3"}  # fmt: skip
    with pytest.raises(ValueError, match="differ"):
        VPGCExperimentConfig(arms=(VPGCArm(), VPGCArm()))


def test_groups_average_their_seeds_per_sample() -> None:
    arms = (VPGCArm(seed=0), VPGCArm(seed=1))
    per_arm = {
        "vpgc-attention-s0": {"A": [1.0, 0.0], "B": [1.0, 1.0], "C": [0.0, 0.0]},
        "vpgc-attention-s1": {"A": [1.0, 1.0], "B": [0.0, 0.0], "C": [0.0, 1.0]},
    }
    base = {"A": [0.0, 0.0], "B": [0.0, 1.0], "C": [1.0, 1.0]}
    result = summarise_groups(CARD, ("A", "B", "C"), per_arm, arms, {"base": base}, 200)
    assert list(result) == ["base", "vpgc-attention"]
    a = result["vpgc-attention"]["tasks"]["A"]
    assert a["value"] == pytest.approx(0.75) and a["seeds"] == [0.5, 1.0]
    c1 = result["vpgc-attention"]["categories"]["c1"]
    assert set(c1) == {"value", "ci95"}  # the one shape
    assert c1["value"] == pytest.approx((0.75 + 0.5) / 2)
    assert result["base"]["categories"]["c2"]["value"] == pytest.approx(1.0)
    table = markdown_table(
        {
            "chance": {"A": 0.5, "B": 0.5, "C": 0.25},
            "categories": {t: CARD["tasks"][t]["category"] for t in CARD["tasks"]},
            "columns": result,
        }
    )
    assert table.splitlines()[0] == "| task | chance | base | vpgc-attention |"
    assert "| A | 50.0 | 0.0 [0.0, 0.0] | 75.0 [" in table
    assert "| **c1** | 50.0 |" in table


@pytest.mark.slow
def test_the_experiment_trains_evaluates_and_tabulates_every_arm(tmp_path) -> None:
    import json
    from dataclasses import replace

    from drum.adapters.vpgc.train import VPGCTrainConfig
    from drum.builtin.vpgc.sources import VPGCDataConfig
    from drum.pipelines.vpgc_experiments import RESULTS, run_vpgc_experiments
    from tests.pipelines.test_demon_benchmark import CONFIG as BENCHMARK

    benchmark = replace(BENCHMARK, tasks=("SameCount", "SpotTheEdit"))
    train = VPGCTrainConfig(batch_size=2, max_steps=2, checkpoint_every=100)
    arms = (VPGCArm(), VPGCArm("vpgc", "random"), VPGCArm("projector"))
    config = VPGCExperimentConfig(arms=arms, train=train, data=VPGCDataConfig(n_train=3),
                                  benchmark=benchmark, bootstrap_resamples=20)  # fmt: skip
    results = run_vpgc_experiments(tmp_path / "vpgc", config, tmp_path / "demon", progress=False)
    assert list(results["columns"]) == ["base", "ceiling", "vpgc-attention", "vpgc-random",
                                        "projector"]  # fmt: skip
    for column in results["columns"].values():
        assert set(column["tasks"]) == {"SameCount", "SpotTheEdit"}
        assert set(column["categories"]) == {"multi_image_reasoning", "visual_relation_inference"}
    assert results["arms"]["vpgc-attention-s0"]["trainable_parameters"] > 0
    assert (tmp_path / "vpgc" / "arms" / "vpgc-attention-s0" / "adapter_config.json").is_file()
    assert (tmp_path / "vpgc" / "arms" / "projector-s0" / "model.safetensors").is_file()
    on_disk = json.loads((tmp_path / "vpgc" / RESULTS).read_text())
    assert on_disk["columns"] == results["columns"]
    assert "| SameCount |" in (tmp_path / "vpgc" / "vpgc_experiments.md").read_text()

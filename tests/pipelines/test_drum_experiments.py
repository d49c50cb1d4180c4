"""The DRUM experiment pipeline end to end on tiny models: every variant gets rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import drum.pipelines.drum_experiments as experiments
from drum.feedback.scorer import FeedbackConfig
from drum.finetune.config import MiningConfig, RetrieverTrainConfig
from drum.finetune.mining import rounds_table
from drum.pipelines.drum_experiments import (
    ABLATION_LABELS,
    R1_LABEL,
    RESULTS_NAME,
    DrumExperimentConfig,
    run_drum_experiments,
)

CONFIG = DrumExperimentConfig(
    mining=MiningConfig(
        rounds=2,
        queries_per_task=6,
        val_queries=4,
        val_shots=1,
        feedback=FeedbackConfig(candidates=5),
        train=RetrieverTrainConfig(epochs=1, batch_size=3, candidates_per_query=4),
    ),
    train_seeds=(0, 1),
    baselines=("random", "concat"),
    shots=(0, 1, 2),
    seeds=(0, 1),
    max_queries=5,
)


@pytest.fixture(scope="module")
def experiment(
    tiny_world: Path, tiny_clip_dir: Path, tiny_llava_dir: Path, tmp_path_factory
) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("experiments")
    results = run_drum_experiments(
        tiny_world, tiny_clip_dir, tiny_llava_dir, out, CONFIG, progress=False
    )
    return out, results


def test_experiments_table_has_baselines_drum_and_ablations(
    experiment: tuple[Path, dict[str, Any]],
) -> None:
    out, results = experiment
    assert json.loads((out / RESULTS_NAME).read_text()) == results
    assert (out / "drum_results.md").is_file() and (out / "drum_results.png").is_file()
    vqa = [row for row in results["rows"] if row["task"] == "vqa"]
    by_strategy: dict[str, set] = {}
    for row in vqa:
        by_strategy.setdefault(row["strategy"], set()).add((row["shots"], row["seed"]))
    assert by_strategy["zero-shot"] == {(0, None)}
    assert by_strategy["random"] == {(k, s) for k in (1, 2) for s in (0, 1)}
    assert by_strategy["concat"] == {(1, None), (2, None)}
    # DRUM rows carry the training seed; R=1 comes from round 1 of the same mining runs.
    assert by_strategy["drum"] == by_strategy[R1_LABEL] == {(k, s) for k in (1, 2) for s in (0, 1)}
    for label in ABLATION_LABELS.values():
        assert by_strategy[label] == {(1, 0), (2, 0)}
    assert list(by_strategy) == [
        "zero-shot", "random", "concat", "drum", R1_LABEL, *ABLATION_LABELS.values()
    ]  # fmt: skip
    assert set(results["mining"]) == {"drum-seed0", "drum-seed1", "no_concat", "no_rerank"}
    table = rounds_table(results["mining"])
    assert "mining run `drum-seed0`" in table and "| 2 |" in table


def test_every_variant_is_a_spec_over_a_named_embedder(
    experiment: tuple[Path, dict[str, Any]],
) -> None:
    out, results = experiment
    embedders = results["config"]["embedders"]
    assert list(embedders) == [
        "default",
        "drum-seed0/round2",
        "drum-seed0/round1",
        "drum-seed1/round2",
        "drum-seed1/round1",
        "no_concat/round1",
        "no_rerank/round1",
    ]
    assert embedders["drum-seed1/round1"]["name"] == str(
        (out / "mining" / "drum-seed1" / "round_1" / "embedder").resolve()
    )
    specs = {(s["name"], s["train_seed"]): s for s in results["config"]["strategies"]}
    assert specs[("drum", 1)]["embedder"] == "drum-seed1/round2"
    assert specs[(ABLATION_LABELS["no_concat"], 0)]["image_weight"] == 1.0
    assert specs[(ABLATION_LABELS["no_rerank"], 0)]["image_weight"] is None


def test_a_rerun_skips_an_evaluation_with_the_same_config(
    experiment: tuple[Path, dict[str, Any]],
    tiny_world: Path,
    tiny_clip_dir: Path,
    tiny_llava_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out, results = experiment

    class Evaluated(Exception):
        pass

    def evaluate(*args: object, **kwargs: object) -> None:
        raise Evaluated

    monkeypatch.setattr(experiments, "evaluate_icl", evaluate)
    rerun = run_drum_experiments(
        tiny_world, tiny_clip_dir, tiny_llava_dir, out, CONFIG, progress=False
    )
    assert rerun == results
    # A saved evaluation of another config is not reused.
    saved = json.loads((out / RESULTS_NAME).read_text())
    saved["config"]["embedders"]["no_rerank/round1"]["fingerprint"] = "clip-retrained"
    (out / RESULTS_NAME).write_text(json.dumps(saved))
    with pytest.raises(Evaluated):
        run_drum_experiments(tiny_world, tiny_clip_dir, tiny_llava_dir, out, CONFIG, progress=False)

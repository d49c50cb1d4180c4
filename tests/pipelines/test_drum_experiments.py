"""The DRUM experiment pipeline end to end on tiny models: every variant gets rows."""

from __future__ import annotations

import json
from pathlib import Path

from drum.feedback.scorer import FeedbackConfig
from drum.pipelines.drum_experiments import (
    ABLATION_LABELS,
    R1_LABEL,
    DrumExperimentConfig,
    run_drum_experiments,
)
from drum.train.config import MiningConfig, RetrieverTrainConfig
from drum.train.mining import rounds_table


def test_experiments_table_has_baselines_drum_and_ablations(
    tiny_world: Path, tiny_clip_dir: Path, tiny_llava_dir: Path, tmp_path: Path
) -> None:
    config = DrumExperimentConfig(
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
    results = run_drum_experiments(
        tiny_world, tiny_clip_dir, tiny_llava_dir, tmp_path, config, progress=False
    )
    assert json.loads((tmp_path / "drum_results.json").read_text()) == results
    assert (tmp_path / "drum_results.md").is_file() and (tmp_path / "drum_results.png").is_file()
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
    assert set(results["mining"]) == {"drum-seed0", "drum-seed1", "no_concat", "no_rerank"}
    table = rounds_table(results["mining"])
    assert "mining run `drum-seed0`" in table and "| 2 |" in table

"""A tiny ICL run with per-query records, for the report tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

RUN_QUERIES = 10  # queries per task
RUN_STRATEGIES = ("random", "concat", "drum")
RUN_SHOTS = (0, 1, 2)


@pytest.fixture(scope="session")
def icl_run(
    tiny_world: Path,
    tiny_clip_dir: Path,
    tiny_siglip_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """``drum eval``'s output folder for vqa + caption: zero-shot, random (seeds 0 and 1),
    concat (tiny CLIP) and drum (tiny SigLIP standing in for a DRUM-trained embedder, so the
    two differ), 1 and 2 shots, ten queries each."""
    from drum.builtin.world.tasks import world_tasks
    from drum.embed.hf import HFDualEncoder
    from drum.eval.icl import ICLEvalConfig, run_icl_eval
    from drum.testing import FakeLVLM

    tasks = world_tasks(tiny_world)
    config = ICLEvalConfig(
        strategies=RUN_STRATEGIES,
        shots=RUN_SHOTS,
        seeds=(0, 1),
        max_queries=RUN_QUERIES,
        bootstrap_resamples=20,
        corpus_bootstrap_resamples=3,
    )
    out = tmp_path_factory.mktemp("icl_run") / "results"
    run_icl_eval(
        [tasks["vqa"], tasks["caption"]],
        FakeLVLM("first_demo", fingerprint="first-demo-dummy", no_demo_reply="nothing"),
        config,
        {"default": HFDualEncoder(tiny_clip_dir), "drum": HFDualEncoder(tiny_siglip_dir)},
        out,
        progress=False,
    )
    return out


@pytest.fixture
def demon_run(tmp_path: Path) -> Path:
    """A scored DEMON output (``drum demon score``) of the four scoring tasks."""
    from drum.demon.evaluate import score_demon
    from tests.demon.conftest import (
        SCORING_RELEASE,
        write_release_task,
        write_scoring_predictions,
    )

    root = tmp_path / "DEMON-Score"
    for folder, (metadata, data) in SCORING_RELEASE.items():
        write_release_task(root, folder, metadata, json.loads(json.dumps(data)))
    predictions = write_scoring_predictions(root, tmp_path / "predictions")
    score_demon(root, predictions, tmp_path / "scored")
    return tmp_path / "scored"

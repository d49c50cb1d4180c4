"""Iterative demonstration mining end to end on a tiny HF CLIP and a tiny HF LLaVA."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from drum.builtin.world.tasks import world_tasks
from drum.feedback.scorer import FeedbackConfig
from drum.finetune.config import MiningConfig, RetrieverTrainConfig
from drum.finetune.mining import mine
from drum.lvlm.hf import HFLVLM

TINY = MiningConfig(
    rounds=2,
    queries_per_task=8,
    val_queries=6,
    val_shots=2,
    feedback=FeedbackConfig(candidates=6, batch_size=16),
    train=RetrieverTrainConfig(epochs=1, batch_size=4, candidates_per_query=4, lr=1e-3),
)


@pytest.fixture(scope="module")
def mined(tiny_world: Path, tiny_clip_dir: Path, tiny_llava_dir: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mining") / "run"
    tasks = list(world_tasks(tiny_world, "val").values())
    mine(tasks, HFLVLM(tiny_llava_dir), tiny_clip_dir, out, TINY, progress=False)
    return out


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def test_mining_writes_every_round(mined: Path, tiny_world: Path) -> None:
    summary = json.loads((mined / "mining.json").read_text())
    assert [r["round"] for r in summary["rounds"]] == [0, 1, 2]
    assert summary["final_embedder"] == str((mined / "round_2" / "embedder").resolve())
    for record in summary["rounds"][1:]:
        assert record["training_lists"] == 3 * TINY.queries_per_task
        assert set(record["feedback"]) == {"vqa", "caption", "classification"}
        assert (Path(record["embedder"]) / "model.safetensors").is_file()
    for record in summary["rounds"]:
        assert set(record["validation"]["vqa"]) == {"hit@2", "precision@2", "vqa_accuracy"}
    # Every (query, candidate) and zero-shot prompt of both rounds is in the feedback cache;
    # round 2 retrieves with round 1's embedder, so it meets some candidates round 1 did not.
    per_round = 3 * TINY.queries_per_task * (TINY.feedback.candidates + 1)
    assert per_round < _lines(mined / "feedback.jsonl") <= 2 * per_round


def test_a_rerun_resumes_without_scoring_or_training(
    mined: Path, tiny_world: Path, tiny_clip_dir: Path, tiny_llava_dir: Path
) -> None:
    before = _lines(mined / "feedback.jsonl")
    weights = (mined / "round_2" / "embedder" / "model.safetensors").read_bytes()
    tasks = list(world_tasks(tiny_world, "val").values())
    mine(tasks, HFLVLM(tiny_llava_dir), tiny_clip_dir, mined, TINY, progress=False)
    assert _lines(mined / "feedback.jsonl") == before
    assert (mined / "round_2" / "embedder" / "model.safetensors").read_bytes() == weights


def test_an_interrupted_round_resumes_from_its_feedback(
    mined: Path, tiny_world: Path, tiny_clip_dir: Path, tiny_llava_dir: Path, tmp_path: Path
) -> None:
    """Round 2 lost (as if killed after scoring): rerunning rescoring nothing it had."""
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(mined, copy)
    shutil.rmtree(copy / "round_2")
    before = _lines(copy / "feedback.jsonl")
    tasks = list(world_tasks(tiny_world, "val").values())
    summary = mine(tasks, HFLVLM(tiny_llava_dir), tiny_clip_dir, copy, TINY, progress=False)
    assert _lines(copy / "feedback.jsonl") == before
    assert [r["round"] for r in summary["rounds"]] == [0, 1, 2]


def test_another_config_in_the_same_directory_is_refused(
    mined: Path, tiny_world: Path, tiny_clip_dir: Path, tiny_llava_dir: Path
) -> None:
    tasks = list(world_tasks(tiny_world, "val").values())
    with pytest.raises(ValueError, match="another config"):
        mine(
            tasks,
            HFLVLM(tiny_llava_dir),
            tiny_clip_dir,
            mined,
            replace(TINY, queries_per_task=5),
            progress=False,
        )


@pytest.mark.parametrize("side", ["pool", "queries"])
def test_validation_refuses_examples_without_answers_before_embedding(
    tiny_world: Path, tmp_path: Path, side: str
) -> None:
    from drum.data.jsonl import DataError
    from drum.finetune.mining import validate
    from tests.data.importers.fixtures import write_answerless

    task = world_tasks(tiny_world, split="val")["vqa"]
    answerless = write_answerless(getattr(task, side), tmp_path / "answerless.jsonl")
    task = replace(task, **{side: answerless})
    message = (
        r"answerless\.jsonl:2: example .* has no answers"
        if side == "pool"
        else r"answerless\.jsonl: 2 of 3 queries have no answers; scoring needs references"
    )
    with pytest.raises(DataError, match=message):
        validate(None, None, [task], TINY, progress=False)  # type: ignore[arg-type]

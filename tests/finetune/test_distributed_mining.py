"""``mine`` with 2 gloo processes: each rank scores its share of the feedback prompts, rank 0
merges them into the file one process writes, training and validation are shared."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from drum.builtin.world.tasks import world_tasks
from drum.finetune.mining import mine
from drum.lvlm.hf import HFLVLM
from drum.testing import spawn_ranks
from drum.utils.distributed import DistContext
from tests.finetune.test_mining import TINY

ONE_ROUND = replace(TINY, rounds=1)


def _mine_rank(world: Path, embedder: Path, lvlm: Path, out: Path) -> None:
    context = DistContext.from_env()
    tasks = list(world_tasks(world, "val").values())
    mine(tasks, HFLVLM(lvlm), embedder, out, ONE_ROUND, progress=False, context=context)


@pytest.mark.slow
def test_two_process_mining_scores_once_and_trains_the_same_retriever(
    tiny_world: Path, tiny_clip_dir: Path, tiny_llava_dir: Path, tmp_path: Path
) -> None:
    tasks = list(world_tasks(tiny_world, "val").values())
    one = tmp_path / "one"
    mine(tasks, HFLVLM(tiny_llava_dir), tiny_clip_dir, one, ONE_ROUND, progress=False)
    two = tmp_path / "two"
    spawn_ranks(_mine_rank, 2, tiny_world, tiny_clip_dir, tiny_llava_dir, two)
    # Each prompt scored once, by one rank; rank 0 merged the parts in scoring order.
    assert (two / "feedback.jsonl").read_text() == (one / "feedback.jsonl").read_text()
    summaries = [json.loads((path / "mining.json").read_text()) for path in (one, two)]
    rounds = [summary["rounds"][1] for summary in summaries]
    assert rounds[0]["feedback"] == rounds[1]["feedback"]
    # Validation shared by the ranks (each generates its block of the ICL prompts): the
    # starting embedder's metrics are the one-process ones exactly.
    baselines = [summary["rounds"][0]["validation"] for summary in summaries]
    assert baselines[0] == baselines[1]
    # The trained retriever is within 1e-5 of the one-process one (below), close enough here
    # that its retrievals, and so its validation, are the same.
    assert rounds[1]["validation"] == rounds[0]["validation"]
    assert rounds[0]["training_lists"] == rounds[1]["training_lists"]
    a, b = (load_file(p / "round_1" / "embedder" / "model.safetensors") for p in (one, two))
    # As in test_distributed_trainer: every weight but the attention key biases (true gradient
    # 0, Adam-normalised rounding noise) within 1e-5 of the one-process run.
    worst = max(
        float((a[name] - b[name]).abs().max())
        for name in a
        if not name.endswith("self_attn.k_proj.bias")
    )
    assert worst < 1e-5, worst
    assert torch.equal(a["logit_scale"], b["logit_scale"])

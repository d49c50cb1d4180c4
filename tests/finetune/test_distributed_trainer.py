"""Retriever training under DDP (2 gloo processes) against one process, same global batch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from drum.finetune import trainer as trainer_module
from drum.finetune.config import RetrieverTrainConfig
from drum.finetune.lists import RankedList
from drum.finetune.trainer import CARD_NAME, train_retriever
from drum.testing import spawn_ranks
from drum.utils.distributed import DistContext
from tests.finetune.ranked import answer_ranked_lists

# 25 lists in global batches of 8: 8, 8, 8, 1, so the ranks' blocks are 4 + 4 and, in the
# short last batch, 0 + 1 (rank 0 then only joins the all-reduce).
CONFIG = RetrieverTrainConfig(
    epochs=2, batch_size=8, candidates_per_query=4, lr=1e-3, warmup_steps=2
)


STEPS_PER_EPOCH = 4  # 25 lists in batches of 8


def _train_rank(model: Path, lists: list[RankedList], out: Path, die: bool) -> None:
    """One rank's training; with ``die``, every rank stops in the second step of epoch 2
    (after rank 0 saved epoch 1's checkpoint), as a killed job would."""
    context = DistContext.from_env()
    assert context.world_size == 2
    if die:
        real, calls = trainer_module.sample_positions, {"n": 0}

        def dies_in_epoch_two(*args, **kwargs):  # type: ignore[no-untyped-def]
            calls["n"] += 1
            if calls["n"] > len(lists) + CONFIG.batch_size:
                raise RuntimeError("killed in epoch 2")  # spawn swallows KeyboardInterrupt
            return real(*args, **kwargs)

        trainer_module.sample_positions = dies_in_epoch_two
    train_retriever(model, lists, out, CONFIG, progress=False, context=context)


@pytest.mark.slow
def test_two_processes_killed_and_resumed_end_within_1e_5_of_one_process(
    tiny_world: Path, tiny_clip_dir: Path, tmp_path: Path
) -> None:
    lists = answer_ranked_lists(tiny_world, 25)
    one = train_retriever(
        tiny_clip_dir, lists, tmp_path / "one", CONFIG, progress=False, context=DistContext()
    )
    two = tmp_path / "two"
    # Killed in epoch 2, then rerun: both ranks resume from rank 0's epoch-1 checkpoint.
    with pytest.raises(Exception, match="killed in epoch 2"):
        spawn_ranks(_train_rank, 2, tiny_clip_dir, lists, two, True)
    checkpoint = tmp_path / ".two.checkpoint" / f"step_{STEPS_PER_EPOCH}"  # the end of epoch 1
    assert checkpoint.is_dir() and not two.exists()
    spawn_ranks(_train_rank, 2, tiny_clip_dir, lists, two, False)
    before, a, b = (load_file(p / "model.safetensors") for p in (tiny_clip_dir, one, two))
    assert a.keys() == b.keys()
    assert any(not torch.equal(before[name], a[name]) for name in a)  # it did train
    # Attention key biases are the one exception, and no run can match them: adding b to
    # every key adds q.b to all of a query's logits, which softmax ignores, so their true
    # gradient is 0 and what autograd returns is rounding noise (~1e-10) whose sign depends
    # on the summation order (one batched backward vs. two halves plus an all-reduce). Adam
    # divides by sqrt(v), turning that noise into steps of up to ~lr in either direction.
    # The closest true statement: they stay within lr x steps of each other, and every other
    # weight is within 1e-5.
    noise_only = [name for name in a if name.endswith("self_attn.k_proj.bias")]
    assert noise_only
    worst = max(float((a[name] - b[name]).abs().max()) for name in a if name not in noise_only)
    assert worst < 1e-5, worst
    steps = CONFIG.epochs * STEPS_PER_EPOCH
    for name in noise_only:
        assert float((a[name] - b[name]).abs().max()) <= CONFIG.lr * steps
    # Every parameter moved the same way: untouched ones (logit_scale) stayed bit-equal.
    assert torch.equal(a["logit_scale"], b["logit_scale"])
    losses = [
        [row["loss"] for row in json.loads((p / CARD_NAME).read_text())["history"]]
        for p in (one, two)
    ]
    np.testing.assert_allclose(losses[0], losses[1], rtol=0, atol=1e-5)
    assert not (tmp_path / ".two.checkpoint").exists()  # rank 0 finished and cleaned up

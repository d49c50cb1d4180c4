"""``drum.demon.sharded`` in one process: a rank's block of whole batches goes to its own part,
and a rerun (here with one process) merges the parts and generates only the rest.

The ranks are simulated in this process (collectives are no-ops): rank 1 of 2 runs alone, as
if rank 0 had been killed before saving anything. No 2-process DEMON run is in the suite
(the 2-process budget goes to feedback scoring and ``drum eval``, which share the batching
rule ``block_bounds`` with this module)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from drum.demon.format import read_demon_root
from drum.demon.predictions import predictions_path, read_predictions
from drum.demon.run import evaluate_demon, generate_predictions
from drum.demon.sharded import parts_root, rank_part_dir
from drum.testing import FakeLVLM
from drum.utils.distributed import DistContext
from tests.demon.test_run import N_SAMPLES, reply


@dataclasses.dataclass(frozen=True)
class LoneRank(DistContext):
    """A rank whose collectives return at once: the others are not running."""

    def barrier(self) -> None:
        return None


def test_a_rank_writes_its_whole_batches_and_a_one_process_rerun_merges_them(
    scoring_root: Path, tmp_path: Path
) -> None:
    tasks = read_demon_root(scoring_root)
    assert [len(task.samples) for task in tasks] == [1, 2, 2, 2]
    out = tmp_path / "out"
    rank1 = FakeLVLM(reply=reply)
    generate_predictions(rank1, tasks, out, batch_size=1, progress=False, context=LoneRank(1, 2))
    # Batches of 1: rank 1 of 2 takes the second of two batches, and the only one of one.
    assert len(rank1.generated) == 4
    assert not any(predictions_path(out, task).exists() for task in tasks)  # rank 0 merges
    part = {t.name: list(read_predictions(rank_part_dir(out, 1, 2), t)) for t in tasks}
    second = {t.name: [t.samples[-1].sample_id] for t in tasks}
    assert part == second

    rerun = FakeLVLM(reply=reply)
    scores = evaluate_demon(rerun, tasks, out, batch_size=1, progress=False)
    assert len(rerun.generated) == N_SAMPLES - 4  # what the part holds is not generated again
    assert not parts_root(out).exists()
    whole = tmp_path / "whole"
    uninterrupted = evaluate_demon(FakeLVLM(reply=reply), tasks, whole, progress=False)
    for task in tasks:  # merged in the task's sample order: the file one process writes
        assert (
            predictions_path(out, task).read_bytes() == predictions_path(whole, task).read_bytes()
        )
    assert scores["tasks"] == uninterrupted["tasks"]


def test_one_process_writes_no_part(scoring_root: Path, tmp_path: Path) -> None:
    tasks = read_demon_root(scoring_root, ["TQA"])
    generate_predictions(FakeLVLM(reply=reply), tasks, tmp_path / "out", progress=False)
    assert not parts_root(tmp_path / "out").exists()
    assert len(read_predictions(tmp_path / "out", tasks[0])) == 2

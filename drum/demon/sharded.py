"""DEMON generation split across the ranks of a ``torchrun`` / ``accelerate launch`` job.

Per task, the pending samples (``pending_samples``: not yet in ``<out>/<Task>/pred.json``) are
cut into the batches one process would run and each rank takes a contiguous block of
**whole** batches (``block_bounds``), so it runs exactly the single-process batches and its
greedy replies are the single-process ones. A rank appends each finished batch to its own
part, ``<out>/demon.parts/rank-<r>-of-<N>/<Task>/pred.json`` (the reference format, rewritten
atomically by ``append_predictions``), then all ranks meet and rank 0 merges the parts into
``<out>/<Task>/pred.json`` (``write_predictions`` keeps the task's sample order: the file one
process writes).

Resume: a killed run leaves ``pred.json`` with every merged task and the parts with every
batch a rank finished. The rerun (any ``N``, one process included) first has rank 0 merge
every leftover part and delete them, then generates only what ``pred.json`` still lacks:
nothing saved is generated twice.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from drum.demon.format import DemonTask
from drum.demon.predictions import (
    SampleId,
    append_predictions,
    predictions_path,
    read_predictions,
)
from drum.utils.distributed import DistContext, block_bounds, parts_dir
from drum.utils.io import remove_directory

PARTS_STEM = "demon"  # the parts live in <out>/demon.parts/


def parts_root(out_dir: str | os.PathLike[str]) -> Path:
    """``<out>/demon.parts``: every rank's partial predictions."""
    return parts_dir(Path(out_dir) / PARTS_STEM)


def rank_part_dir(out_dir: str | os.PathLike[str], rank: int, world_size: int) -> Path:
    """Rank ``rank`` of ``world_size``'s results folder (``<Task>/pred.json`` inside)."""
    return parts_root(out_dir) / f"rank-{rank}-of-{world_size}"


def rank_block(n: int, batch_size: int, context: DistContext) -> tuple[int, int]:
    """``[start, stop)`` of this rank's whole batches among ``n`` pending samples."""
    return block_bounds(n, batch_size, context.rank, context.world_size)


def merge_parts(out_dir: str | os.PathLike[str], tasks: Sequence[DemonTask]) -> int:
    """Add every part's predictions (any world size, folders in name order) of ``tasks`` to
    ``<out>/<Task>/pred.json``; return how many were new. Rank 0's work."""
    root = parts_root(out_dir)
    merged = 0
    folders = sorted(p for p in root.glob("rank-*-of-*") if p.is_dir()) if root.is_dir() else []
    for task in tasks:
        found: dict[SampleId, str] = {}
        for folder in folders:
            if predictions_path(folder, task).is_file():
                for sample_id, text in read_predictions(folder, task).items():
                    found.setdefault(sample_id, text)
        if not found:
            continue
        path = predictions_path(out_dir, task)
        done = read_predictions(out_dir, task) if path.is_file() else {}
        new = {sample_id: text for sample_id, text in found.items() if sample_id not in done}
        if new:
            append_predictions(out_dir, task, new)
            merged += len(new)
    return merged


def finish_leftovers(out_dir: str | os.PathLike[str], tasks: Sequence[DemonTask]) -> None:
    """Merge what an interrupted run's ranks saved for ``tasks``, then delete those parts
    (rank 0). Parts of other tasks stay for a run that names them."""
    root = parts_root(out_dir)
    if not root.is_dir():
        return
    merge_parts(out_dir, tasks)
    for folder in root.glob("rank-*-of-*"):
        for task in tasks:
            remove_directory(folder / task.name)
    if not any(path.is_file() for path in root.rglob("*")):
        remove_directory(root)

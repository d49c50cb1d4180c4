"""Run an LVLM on DEMON: greedy predictions into ``<out>/<Task>/pred.json``, resumable, then
scores (``drum.demon.evaluate``).

Each task's pending samples (its first ``max_per_task`` in core.json's order, minus those
``pred.json`` already holds) are prompted zero-shot (``demon_prompt``) in batches of
``batch_size``; every batch's replies are appended to ``pred.json`` atomically
(``append_predictions``) before the next batch starts. A killed run therefore keeps every
finished batch, and running it again generates only what is missing: nothing saved is ever
generated twice.

``<out>/demon_run.json`` records the model's fingerprint and ``max_new_tokens``; resuming into
the same folder with another model or length is refused (``DemonRunError``) rather than
mixing two models' predictions in one score. Two runs at once on one folder are refused too:
the first holds ``<out>/demon.lock`` (``drum.demon.lock``) until its scores are written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from drum.demon.evaluate import SCORES_FILE, first_samples, score_tasks
from drum.demon.format import DemonSample, DemonTask
from drum.demon.lock import output_lock
from drum.demon.predictions import append_predictions, predictions_path, read_predictions
from drum.demon.prompt import demon_prompt
from drum.demon.sharded import finish_leftovers, rank_block, rank_part_dir
from drum.lvlm.base import LVLM
from drum.utils.distributed import DistContext
from drum.utils.io import atomic_write_json

RUN_FILE = "demon_run.json"
BATCH_SIZE = 8
MAX_NEW_TOKENS = 300  # the reference inference script's max_new_tokens


class DemonRunError(ValueError):
    """A DEMON run that cannot go on: an output folder holding another run's predictions, or
    a batch the model refuses (a prompt longer than its context), naming task and samples."""


def pending_samples(
    task: DemonTask, out_dir: str | os.PathLike[str], max_per_task: int | None = None
) -> list[DemonSample]:
    """The samples of ``task`` (its first ``max_per_task``) not yet in its ``pred.json``."""
    path = predictions_path(out_dir, task)
    done = read_predictions(out_dir, task) if path.exists() else {}
    return [s for s in first_samples(task, max_per_task).samples if s.sample_id not in done]


def check_run(out_dir: Path, record: dict[str, Any]) -> None:
    """Write ``demon_run.json`` on a first run; on a resumed one, refuse another model or
    generation length."""
    path = out_dir / RUN_FILE
    if path.exists():
        previous = json.loads(path.read_text(encoding="utf-8"))
        changed = [key for key in record if previous.get(key) != record[key]]
        if changed:
            raise DemonRunError(
                f"{out_dir} holds predictions of another run ({', '.join(changed)}: "
                f"{[previous.get(key) for key in changed]!r} here, "
                f"{[record[key] for key in changed]!r} now); expected a new --out"
            )
        return
    atomic_write_json(path, record)


def generate_predictions(
    lvlm: LVLM,
    tasks: Sequence[DemonTask],
    out_dir: str | os.PathLike[str],
    max_per_task: int | None = None,
    batch_size: int = BATCH_SIZE,
    max_new_tokens: int = MAX_NEW_TOKENS,
    progress: bool = True,
    context: DistContext | None = None,
) -> int:
    """Generate what is missing from each task's ``pred.json``, one atomic append per batch;
    return how many samples were generated (by all ranks).

    ``context``: under a launcher each rank generates a contiguous block of whole batches of
    each task into its own part and rank 0 merges them (``drum.demon.sharded``).

    Raises:
        OutputLockedError: another run holds ``out_dir`` (``drum.demon.lock``)."""
    context = context or DistContext()
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a positive integer, got {max_new_tokens}")
    out_dir = Path(out_dir)
    with output_lock(out_dir, context):  # one run per folder; its ranks share it
        return _generate(
            lvlm, tasks, out_dir, max_per_task, batch_size, max_new_tokens, progress, context
        )


def _generate(
    lvlm: LVLM,
    tasks: Sequence[DemonTask],
    out_dir: Path,
    max_per_task: int | None,
    batch_size: int,
    max_new_tokens: int,
    progress: bool,
    context: DistContext,
) -> int:
    def prepare() -> None:  # rank 0 first: it writes the record and merges leftover parts
        check_run(out_dir, {"model": lvlm.fingerprint, "max_new_tokens": max_new_tokens})
        if context.is_main:
            finish_leftovers(out_dir, tasks)

    context.main_first(prepare)
    pending = {task.name: pending_samples(task, out_dir, max_per_task) for task in tasks}
    total = sum(len(samples) for samples in pending.values())
    context.barrier()  # every rank has read pred.json before rank 0 rewrites one
    # One process appends to <out>/<Task>/pred.json; each of N ranks to its own part.
    target = (
        rank_part_dir(out_dir, context.rank, context.world_size) if context.distributed else out_dir
    )
    if context.distributed:  # this rank's whole batches of each task
        pending = {
            name: samples[slice(*rank_block(len(samples), batch_size, context))]
            for name, samples in pending.items()
        }
    own = sum(len(samples) for samples in pending.values())
    with tqdm(total=own, desc="DEMON", unit="sample", disable=not progress) as bar:
        for task in tasks:
            samples = pending[task.name]
            bar.set_postfix_str(task.name)
            for start in range(0, len(samples), batch_size):
                batch = samples[start : start + batch_size]
                prompts = [demon_prompt(task, sample) for sample in batch]
                try:
                    replies = lvlm.generate(prompts, max_new_tokens, batch_size, progress=False)
                except ValueError as error:  # ContextOverflowError among them
                    ids = [sample.sample_id for sample in batch]
                    raise DemonRunError(
                        f"DEMON task {task.name!r}, sample_ids {ids!r}: {error}"
                    ) from error
                append_predictions(
                    target,
                    task,
                    {s.sample_id: r for s, r in zip(batch, replies, strict=True)},
                )
                bar.update(len(batch))
            if context.distributed:
                context.barrier()  # every rank's part of this task is written
                if context.is_main:
                    finish_leftovers(out_dir, [task])
                context.barrier()  # merged: no rank writes the next task's part before
    return total


def evaluate_demon(
    lvlm: LVLM,
    tasks: Sequence[DemonTask],
    out_dir: str | os.PathLike[str],
    max_per_task: int | None = None,
    batch_size: int = BATCH_SIZE,
    max_new_tokens: int = MAX_NEW_TOKENS,
    progress: bool = True,
    categories: Mapping[str, Sequence[str]] | None = None,
    context: DistContext | None = None,
) -> dict[str, Any]:
    """Generate greedily (resuming, see the module docstring) then score into ``out_dir``:
    ``<Task>/pred.json``, ``<Task>/sample_scores.jsonl`` and ``demon_scores.json``, with
    categories aggregated by ``categories`` (default the reference's ``CATEGORIES``).

    Example::

        tasks = read_demon_root("DEMON-Core", ["MMCoQA", "TQA"])
        scores = evaluate_demon(HFLVLM("Qwen/Qwen2-VL-2B-Instruct"), tasks, "runs/demon")
    """
    if not tasks:
        raise ValueError("no DEMON task to evaluate")
    context = context or DistContext()
    with output_lock(out_dir, context):  # held through generation and scoring
        return _evaluate(
            lvlm,
            tasks,
            out_dir,
            max_per_task,
            batch_size,
            max_new_tokens,
            progress,
            categories,
            context,
        )


def _evaluate(
    lvlm: LVLM,
    tasks: Sequence[DemonTask],
    out_dir: str | os.PathLike[str],
    max_per_task: int | None,
    batch_size: int,
    max_new_tokens: int,
    progress: bool,
    categories: Mapping[str, Sequence[str]] | None,
    context: DistContext,
) -> dict[str, Any]:
    generated = generate_predictions(
        lvlm, tasks, out_dir, max_per_task, batch_size, max_new_tokens, progress, context
    )
    config = {
        "model": lvlm.fingerprint,
        "max_new_tokens": max_new_tokens,
        "batch_size": batch_size,
        "decoding": "greedy",
        "generated_this_run": generated,
    }
    if context.is_main:  # only rank 0 writes the scores
        scores = score_tasks(
            tasks, out_dir, out_dir, max_per_task, config=config, categories=categories
        )
    context.barrier()
    if context.is_main:
        return scores
    return json.loads((Path(out_dir) / SCORES_FILE).read_text(encoding="utf-8"))

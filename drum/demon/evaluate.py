"""Score a predictions folder against a DEMON release: ``demon_scores.json`` and, per task,
``<Task>/sample_scores.jsonl``.

``score_demon`` reads ``<predictions>/<Task>/pred.json`` (the reference's layout, see
``drum.demon.format``), scores every sample with ``score_sample`` and aggregates with
``aggregate``. It writes, atomically::

    <out>/demon_scores.json          {"tasks": {Task: {"metric", "score", "n", "ci95"}},
                                      "categories": {name: score}, "missing": {...},
                                      "category_members": {name: [Task, ...]},
                                      "config": {...}, "provenance": {...}}
    <out>/<Task>/sample_scores.jsonl {"sample_id", "score"} per line, in core.json's order
    <out>/<Task>/sample_records.jsonl {"sample_id", "images", "instruction", "context",
                                      "choices", "prediction", "references", "score"} per
                                      line, same order (what ``drum report`` shows)
    <out>/data_report.json           what looks wrong in each scored task's samples
                                      (``drum.demon.data_report``), never refused

``tasks`` and ``categories`` are what ``aggregate`` returns (a task's ``score`` is a fraction,
a category's a percentage, as the reference has them); ``ci95`` (a task's 95% percentile
bootstrap interval of its mean, ``bootstrap_ci``), ``missing`` (categories not scored for want
of tasks), ``category_members`` (the category map aggregated by: the reference's, or the
built-in tasks' own), ``config`` and ``provenance`` are extra.

A sample without a prediction is an error (``DemonScoringError`` naming the task and the
first sample ids), never a silent 0: a score over fewer samples than asked for would not be
comparable. To score part of a task, ask for part of it (``max_per_task``: its first N
samples in core.json's order, what ``drum demon eval --max-per-task`` generates).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from drum.demon.categories import aggregate
from drum.demon.data_report import data_report, write_data_report
from drum.demon.format import DemonTask, SampleId, read_demon_root
from drum.demon.predictions import predictions_path, read_predictions
from drum.demon.scorers import DemonScoringError, score_sample
from drum.utils.io import atomic_write_json, atomic_write_text

SCORES_FILE = "demon_scores.json"
SAMPLE_SCORES_FILE = "sample_scores.jsonl"
SAMPLE_RECORDS_FILE = "sample_records.jsonl"
BOOTSTRAP_RESAMPLES = 1000


def first_samples(task: DemonTask, max_per_task: int | None) -> DemonTask:
    """``task`` with only its first ``max_per_task`` samples (all of them for None)."""
    if max_per_task is None:
        return task
    if max_per_task < 1:
        raise ValueError(f"max_per_task must be a positive integer, got {max_per_task}")
    return dataclasses.replace(task, samples=task.samples[:max_per_task])


def score_task(task: DemonTask, predictions: Mapping[SampleId, str]) -> list[float]:
    """Every sample's score, in the task's order.

    Raises:
        DemonScoringError: a sample has no prediction (naming the task and up to 10 sample
            ids), or cannot be scored (``score_sample``).
    """
    absent = [sample.sample_id for sample in task.samples if sample.sample_id not in predictions]
    if absent:
        raise DemonScoringError(
            f"DEMON task {task.name!r}: no prediction for {len(absent)} of "
            f"{len(task.samples)} samples (sample_ids {absent[:10]!r}); expected one per sample "
            "in pred.json"
        )
    return [
        score_sample(
            task.name,
            task.question_type,
            predictions[sample.sample_id],
            sample.response_raw,  # type: ignore[arg-type]  # set by DemonSample
            sample.choices,
            sample_id=sample.sample_id,
        )
        for sample in task.samples
    ]


def demon_scores(
    per_sample: Mapping[str, Sequence[float]],
    question_types: Mapping[str, str],
    bootstrap_resamples: int = BOOTSTRAP_RESAMPLES,
    categories: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """``aggregate`` (over ``categories``, default the reference's) with a 95% bootstrap
    interval (``ci95: [low, high]``) added to each task."""
    from drum.metrics.stats import bootstrap_ci

    result = aggregate(per_sample, question_types, categories)
    for task, entry in result["tasks"].items():
        _, low, high = bootstrap_ci(per_sample[task], n_resamples=bootstrap_resamples)
        entry["ci95"] = [low, high]
    return result


def write_sample_scores(
    out_dir: str | os.PathLike[str], task: DemonTask, scores: Sequence[float]
) -> Path:
    """``<out_dir>/<Task>/sample_scores.jsonl`` (atomically): ``{"sample_id", "score"}`` a line."""
    path = Path(out_dir) / task.name / SAMPLE_SCORES_FILE
    lines = [
        json.dumps({"sample_id": sample.sample_id, "score": score}, ensure_ascii=False)
        for sample, score in zip(task.samples, scores, strict=True)
    ]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return path


def write_sample_records(
    out_dir: str | os.PathLike[str],
    task: DemonTask,
    predictions: Mapping[SampleId, str],
    scores: Sequence[float],
) -> Path:
    """``<out_dir>/<Task>/sample_records.jsonl`` (atomically), a line per sample: its id, image
    files (absolute), instruction text, context, choices (null when none), the prediction, the
    references (``[response]``) and its score."""
    path = Path(out_dir) / task.name / SAMPLE_RECORDS_FILE
    lines = [
        json.dumps(
            {
                "sample_id": sample.sample_id,
                "images": [str(Path(image).resolve()) for image in sample.images],
                "instruction": task.instructions[sample.instruction_id],
                "context": sample.context,
                "choices": None if sample.choices is None else list(sample.choices),
                "prediction": predictions[sample.sample_id],
                "references": [sample.response],
                "score": score,
            },
            ensure_ascii=False,
        )
        for sample, score in zip(task.samples, scores, strict=True)
    ]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return path


def score_tasks(
    tasks: Iterable[DemonTask],
    predictions_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    max_per_task: int | None = None,
    config: Mapping[str, Any] | None = None,
    categories: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Score each task's ``pred.json`` under ``predictions_dir``, write the per-sample JSONL
    files (scores and records), ``data_report.json`` and ``demon_scores.json`` under
    ``out_dir``, and return the scores. Each task whose data looks wrong is one
    ``DemonDataWarning`` (``drum.demon.data_report``); it is scored all the same.

    Predictions are read against the whole task (one made for another version of it is
    refused), then its first ``max_per_task`` samples are scored. ``config`` is recorded
    under ``"config"`` beside the data and predictions paths. ``categories`` (category ->
    tasks; default the reference's ``CATEGORIES``) is the map the tasks are aggregated by.
    """
    from drum.utils.provenance import provenance

    out_dir = Path(out_dir)
    per_sample: dict[str, list[float]] = {}
    types: dict[str, str] = {}
    selected: list[tuple[DemonTask, Mapping[SampleId, str]]] = []
    for task in tasks:
        predictions = read_predictions(predictions_dir, task)
        selected.append((first_samples(task, max_per_task), predictions))
    if not selected:
        raise DemonScoringError("no DEMON task to score")
    # Said (one warning a task) before a sample the reference cannot score stops the scoring.
    report = data_report(part for part, _ in selected)
    for part, predictions in selected:
        per_sample[part.name] = score_task(part, predictions)
        types[part.name] = part.question_type
    for task, predictions in selected:
        write_sample_scores(out_dir, task, per_sample[task.name])
        write_sample_records(out_dir, task, predictions, per_sample[task.name])
    result = demon_scores(per_sample, types, categories=categories)
    result["config"] = {
        "predictions": str(predictions_dir),
        "max_per_task": max_per_task,
        "bootstrap_resamples": BOOTSTRAP_RESAMPLES,
        **(config or {}),
    }
    result["provenance"] = provenance()
    write_data_report(out_dir, report)
    atomic_write_json(out_dir / SCORES_FILE, result)
    return result


def with_predictions(
    tasks: Sequence[DemonTask], predictions_dir: str | os.PathLike[str], required: bool = False
) -> list[DemonTask]:
    """The ``tasks`` that have a ``pred.json`` under ``predictions_dir``.

    Raises:
        DemonScoringError: none has one, or (``required``) one of them has none.
    """
    found = [task for task in tasks if predictions_path(predictions_dir, task).is_file()]
    if required and len(found) < len(tasks):
        done = {task.name for task in found}
        absent = [task.name for task in tasks if task.name not in done]
        raise DemonScoringError(
            f"no predictions for task(s) {absent}: expected "
            f"{predictions_path(predictions_dir, absent[0])}"
        )
    if not found:
        raise DemonScoringError(
            f"no predictions under {predictions_dir}: expected <Task>/pred.json for one of the "
            f"tasks {[task.name for task in tasks]}"
        )
    return found


def score_demon(
    data_root: str | os.PathLike[str],
    predictions_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    tasks: Sequence[str] | None = None,
    max_per_task: int | None = None,
    categories: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Score ``<predictions_dir>/<Task>/pred.json`` against the release at ``data_root`` (the
    named tasks, or every one with predictions) into ``out_dir``; return the scores, with
    categories aggregated by ``categories`` (default the reference's ``CATEGORIES``; for a
    built-in root, ``drum.builtin.demon.card.builtin_categories(data_root)``, and its
    image-choice tasks registered first with ``register_card_scoring(data_root)``, as
    ``drum demon score`` does: ``score_sample`` routes image choice by registered name).

    Example::

        scores = score_demon("DEMON-Core", "results/cheetah", "scores/cheetah")
        scores["tasks"]["MMCoQA"]   # {'metric': 'Rouge-L f', 'score': 0.41, 'n': 500, ...}
    """
    found = read_demon_root(data_root, tasks)
    selected = with_predictions(found, predictions_dir, required=tasks is not None)
    return score_tasks(
        selected,
        predictions_dir,
        out_dir,
        max_per_task,
        config={"data": str(data_root)},
        categories=categories,
    )

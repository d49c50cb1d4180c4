"""DEMON predictions where the reference scripts put them: ``<results>/<Task>/pred.json``.

A JSON list of ``{"sample_id", "pred_response", "gt_response"}`` (indent 4, UTF-8 unescaped,
as ``i4_cheetah_llama2.py`` writes it), so that DRUM scores the reference's predictions and the
reference's ``evaluate.py`` scores DRUM's. Errors are ``DemonFormatError``s naming the file and
the sample.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from drum.demon.format import DemonFormatError, DemonTask, SampleId, load_json, require_fields
from drum.utils.io import atomic_write_text

PREDICTIONS_FILE = "pred.json"


def task_name(task: DemonTask | str) -> str:
    """The folder name of ``task`` (a ``DemonTask`` or the name itself)."""
    return task.name if isinstance(task, DemonTask) else task


def predictions_path(results_dir: str | os.PathLike[str], task: DemonTask | str) -> Path:
    """``<results_dir>/<Task>/pred.json``, where the reference scripts read and write it."""
    return Path(results_dir) / task_name(task) / PREDICTIONS_FILE


def read_predictions(
    results_dir: str | os.PathLike[str], task: DemonTask | str
) -> dict[SampleId, str]:
    """``sample_id -> pred_response`` from ``<results_dir>/<Task>/pred.json``.

    Given a ``DemonTask``, every sample_id must be one of its samples (matched by its text, so
    a ``"3"`` finds sample 3, and returned as the task spells it) and a ``gt_response`` must be
    that sample's response: predictions made for another version of the task are refused.

    Example::

        preds = read_predictions("results/cheetah", task)   # {0: 'baseball', 1: ...}
    """
    path = predictions_path(results_dir, task)
    records = load_json(path)
    if not isinstance(records, list):
        raise DemonFormatError(
            path, f"expected a JSON list of predictions, got {type(records).__name__}"
        )
    by_text = (
        {str(sample.sample_id): sample for sample in task.samples}
        if isinstance(task, DemonTask)
        else None
    )
    predictions: dict[SampleId, str] = {}
    for index, record in enumerate(records):
        require_fields(record, ("sample_id", "pred_response"), f"prediction [{index}]", path)
        sid = record["sample_id"]
        if isinstance(sid, bool) or not isinstance(sid, int | str):
            raise DemonFormatError(
                path, f"prediction [{index}]: sample_id must be an integer or a string"
            )
        if not isinstance(record["pred_response"], str):
            raise DemonFormatError(path, "pred_response must be a string", sid)
        if by_text is not None:
            sample = by_text.get(str(sid))
            if sample is None:
                raise DemonFormatError(
                    path, f"no such sample in task {task_name(task)!r}'s core.json", sid
                )
            gt = record.get("gt_response", sample.response)
            if str(gt) != sample.response:
                raise DemonFormatError(
                    path,
                    f"gt_response {gt!r} differs from core.json's response {sample.response!r}",
                    sid,
                )
            sid = sample.sample_id
        if sid in predictions:
            raise DemonFormatError(path, "predicted twice", sid)
        predictions[sid] = record["pred_response"]
    return predictions


def write_predictions(
    results_dir: str | os.PathLike[str], task: DemonTask, predictions: Mapping[SampleId, str]
) -> Path:
    """Write ``predictions`` (``sample_id -> text``) atomically to
    ``<results_dir>/<Task>/pred.json`` in the reference's format and return its path.

    The records follow the task's sample order, each ``{"sample_id", "pred_response",
    "gt_response"}`` with ``gt_response`` the sample's response as text, as the reference
    writes it. The reference ``evaluate.py`` scores a multi-choice file only when it holds
    every sample.

    Example::

        write_predictions("results/drum", task, {0: "baseball", 1: "True"})
    """
    path = predictions_path(results_dir, task)
    known = {sample.sample_id for sample in task.samples}
    unknown = [sid for sid in predictions if sid not in known]
    if unknown:
        raise DemonFormatError(
            path, f"predictions for sample_ids not in task {task.name!r}: {unknown[:10]!r}"
        )
    for sid, text in predictions.items():
        if not isinstance(text, str):
            raise DemonFormatError(path, f"a prediction must be a string, got {text!r}", sid)
    records = [
        {
            "sample_id": sample.sample_id,
            "pred_response": predictions[sample.sample_id],
            "gt_response": sample.response,
        }
        for sample in task.samples
        if sample.sample_id in predictions
    ]
    atomic_write_text(path, json.dumps(records, indent=4, ensure_ascii=False) + "\n")
    return path


def append_predictions(
    results_dir: str | os.PathLike[str], task: DemonTask, predictions: Mapping[SampleId, str]
) -> dict[SampleId, str]:
    """Add a batch of ``predictions`` to ``pred.json`` (created if absent), rewriting it
    atomically, and return every prediction it now holds.

    Made for resumable generation: after a kill the file holds every batch appended before
    it, and ``task.samples`` minus ``read_predictions(...)`` is what is left to generate. A
    sample already predicted with a different text is refused (it was generated twice).
    Each call rewrites the whole file (O(n) per batch; about 1 MB for 5,000 samples).

    Example::

        done = append_predictions("results/drum", task, dict(zip(ids, lvlm.generate(prompts))))
    """
    path = predictions_path(results_dir, task)
    existing = read_predictions(results_dir, task) if path.exists() else {}
    clashes = [
        sid for sid, text in predictions.items() if sid in existing and existing[sid] != text
    ]
    if clashes:
        raise DemonFormatError(
            path,
            f"sample_ids {clashes[:10]!r} already hold a different prediction: expected each "
            "sample to be generated once",
        )
    merged = {**existing, **predictions}
    write_predictions(results_dir, task, merged)
    return merged

"""What looks wrong in DEMON data, reported and never refused: ``<out>/data_report.json``.

Released data is what it is. The reference (``DCDmllm/Cheetah`` commit 619bd61, the inference
script and ``DEMON Benchmark/scripts/evaluate.py``) reads and scores samples that look wrong,
so ``drum.demon.format`` reads them too and this module lists them, per task, beside the
scores. Reasons (``REASONS``):

- ``response_not_in_choices``: the sample has a ``choice_list`` and its response is none of
  them after the reference's normalisation, nor (outside the tasks scored by TF-IDF) as
  written, stripped, or as the label a choice starts with (``Image B`` of ``Image B:
  {image#6}``). The image-choice tasks never read the list (scored as the reference scores
  them); a task scored by TF-IDF stops at the reference's ``assert gt_ans in choice_list``
  (``score_multiple_choice`` refuses it, with that reason);
- ``placeholder_out_of_range``: an ``{image#k}`` / ``{table#k}`` in the context or a choice
  with no image (``k`` outside ``1..len(images_path)``); the prompt keeps it as text, as the
  reference's does;
- ``empty_question_type`` (a task note, not a sample's): ``metadata.question_type`` is ``""``;
  the task is scored as ``open-ended`` where the reference prints "Dataset not supported" and
  scores nothing.

The file::

    {"tasks": {Task: {"n_samples": N, "question_type": "open-ended",
                      "problems": {reason: {"count": n, "sample_ids": [...]}},
                      "notes": {reason: "text"}}}}

Each task with something to report is also one ``DemonDataWarning`` (``summary``), which the
CLI prints as one line on stderr.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drum.demon.categories import MULTI_CHOICE, OPEN_ENDED, TASK_QUESTION_TYPES
from drum.demon.format import DemonFormatWarning, DemonSample, DemonTask, placeholder_problem
from drum.demon.normalize import normalize
from drum.demon.scorers import routed_image_choice_tasks
from drum.utils.io import atomic_write_json

DATA_REPORT_FILE = "data_report.json"
RESPONSE_NOT_IN_CHOICES = "response_not_in_choices"
PLACEHOLDER_OUT_OF_RANGE = "placeholder_out_of_range"
EMPTY_QUESTION_TYPE = "empty_question_type"
REASONS = (RESPONSE_NOT_IN_CHOICES, PLACEHOLDER_OUT_OF_RANGE, EMPTY_QUESTION_TYPE)
SHOWN_IDS = 5  # sample ids a one-line summary shows per reason


class DemonDataWarning(DemonFormatWarning):
    """A task whose data looks wrong but is read as the reference reads it; one line per
    task, naming the reasons, their counts and the first sample ids."""


def _choice_matches(choice: str, response: str) -> bool:
    # Exact, or the image-choice layout of COMICS_Panel and RecipeQA_*: the response is the
    # label ("Image B") and the choice the label and its image ("Image B: {image#6}").
    choice, response = choice.strip(), response.strip()
    return choice == response or choice.startswith(response + ":")


def _tfidf_routed(task: DemonTask) -> bool:
    """Whether ``score_sample`` scores ``task`` by TF-IDF over the choice list (and the
    reference asserts the response is in it): multi-choice, not image choice."""
    return task.question_type == MULTI_CHOICE and task.name not in routed_image_choice_tasks()


def sample_problems(sample: DemonSample, tfidf: bool = False) -> list[str]:
    """The reasons (``REASONS``) for which ``sample`` looks wrong, in ``REASONS`` order.

    ``tfidf``: its task is scored by TF-IDF, where only the reference's own comparison (both
    sides normalised) counts; elsewhere an image-choice label (``Image B`` of ``Image B:
    {image#6}``) or the stripped text is in its list too."""
    problems: list[str] = []
    if sample.choices is not None:
        # What the reference's assert compares: both sides normalised.
        normalised = normalize(sample.response) in {normalize(c) for c in sample.choices}
        listed = any(_choice_matches(choice, sample.response) for choice in sample.choices)
        if not (normalised or (listed and not tfidf)):
            problems.append(RESPONSE_NOT_IN_CHOICES)
    texts = (sample.context, *(sample.choices or ()))
    if any(placeholder_problem(text, len(sample.images)) for text in texts):
        problems.append(PLACEHOLDER_OUT_OF_RANGE)
    return problems


def _empty_type_note(task: DemonTask) -> str:
    listed = TASK_QUESTION_TYPES.get(task.name)
    if listed is not None and listed != task.question_type:
        why = f"; DEMON lists {task.name} as {listed}"
    elif any(sample.choices is not None for sample in task.samples):
        why = "; its samples have choice lists"
    else:
        why = ""
    metric = "ROUGE-L" if task.question_type == OPEN_ENDED else "accuracy"
    return (
        f"metadata.question_type is empty: scored as {task.question_type} ({metric}){why}; "
        "the reference's evaluate.py scores no sample of it ('Dataset not supported')"
    )


@dataclass(frozen=True)
class TaskDataReport:
    """One task's report: ``problems`` maps a reason to its sample ids (in the task's order),
    ``notes`` a task-level reason to its text."""

    task: str
    n_samples: int
    question_type: str
    problems: dict[str, list[Any]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The task's entry in ``data_report.json``."""
        return {
            "n_samples": self.n_samples,
            "question_type": self.question_type,
            "problems": {
                reason: {"count": len(ids), "sample_ids": ids}
                for reason, ids in self.problems.items()
            },
            "notes": dict(self.notes),
        }

    def summary(self) -> str | None:
        """One line for stderr, or None when there is nothing to report.

        Example: ``"DEMON task 'COMICS_Panel': 1 of 2 samples look wrong (response_not_in_choices:
        1, sample_ids [1]); read as the reference reads them, listed in data_report.json"``
        """
        if not self.problems and not self.notes:
            return None
        parts = []
        if self.problems:
            flagged = {sid for ids in self.problems.values() for sid in ids}
            counts = "; ".join(
                f"{reason}: {len(ids)}, sample_ids {ids[:SHOWN_IDS]!r}"
                + (" ..." if len(ids) > SHOWN_IDS else "")
                for reason, ids in self.problems.items()
            )
            parts.append(
                f"{len(flagged)} of {self.n_samples} samples look wrong ({counts}); read as the "
                f"reference reads them, listed in {DATA_REPORT_FILE}"
            )
        parts.extend(self.notes.values())
        return f"DEMON task {self.task!r}: " + "; ".join(parts)


def task_data_report(task: DemonTask) -> TaskDataReport:
    """What looks wrong in ``task`` (every sample it holds), with the image-choice tasks
    registered so far (``drum.demon.scorers``) routed as ``score_sample`` routes them."""
    problems: dict[str, list[Any]] = {}
    tfidf = _tfidf_routed(task)
    for sample in task.samples:
        for reason in sample_problems(sample, tfidf):
            problems.setdefault(reason, []).append(sample.sample_id)
    notes = {EMPTY_QUESTION_TYPE: _empty_type_note(task)} if task.question_type_empty else {}
    ordered = {reason: problems[reason] for reason in REASONS if reason in problems}
    return TaskDataReport(task.name, len(task.samples), task.question_type, ordered, notes)


def data_report(tasks: Iterable[DemonTask]) -> dict[str, Any]:
    """``data_report.json``'s content for ``tasks``, one ``DemonDataWarning`` per task with
    something to report (``TaskDataReport.summary``)."""
    reports = [task_data_report(task) for task in tasks]
    for report in reports:
        line = report.summary()
        if line:
            warnings.warn(line, DemonDataWarning, stacklevel=2)
    return {"tasks": {report.task: report.to_json() for report in reports}}


def write_data_report(out_dir: str | os.PathLike[str], report: dict[str, Any]) -> Path:
    """``<out_dir>/data_report.json`` (atomically); its path."""
    path = Path(out_dir) / DATA_REPORT_FILE
    atomic_write_json(path, report)
    return path

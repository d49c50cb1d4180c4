"""DEMON's 7 categories and 29 tasks, and the reference's aggregation of task scores.

Reference: ``DCDmllm/Cheetah`` (commit 619bd61), ``DEMON Benchmark/scripts/i4_score.py``: task
and category names exactly as it spells them (``"visual_story_telling_list"``, ``"nuscenes"``;
the release folder is ``nuScenes``), in its order. Question types come from each task's
``metadata.question_type`` in ``DEMON Benchmark/DEMON-Core/*/*/README.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

OPEN_ENDED = "open-ended"
MULTI_CHOICE = "multi-choice"

CATEGORIES: dict[str, tuple[str, ...]] = {
    "multi_modal_dialogue": ("MMCoQA", "ALFRED"),
    "visual_story_telling_list": ("AESOP", "DiDeMoSV", "FlintstonesSV", "PororoSV", "VIST"),
    "visual_relation_inference": ("IEdit", "Spot-the-Diff", "Birds-to-Words", "CLEVR-Change"),
    "multi_modal_cloze": (
        "COMICS_Dialogue", "COMICS_Panel", "RecipeQA_VisualCloze", "RecipeQA_TextCloze",
    ),
    "knowledge_grounded_qa": ("WebQA", "TQA", "MultiModalQA"),
    "text_rich_images_qa": ("SlideVQA", "OCR-VQA", "DocVQA"),
    "multi_image_reasoning": (
        "Fashion200K", "NLVR2", "nuscenes", "VizWiz", "MIT-States_StateCoherence",
        "MIT-States_PropertyCoherence", "VISION", "RecipeQA_ImageCoherence",
    ),
}  # fmt: skip

_OPEN_ENDED_TASKS = (
    "MMCoQA", "ALFRED", "AESOP", "DiDeMoSV", "FlintstonesSV", "PororoSV", "VIST",
    "IEdit", "Spot-the-Diff", "Birds-to-Words", "CLEVR-Change",
)  # fmt: skip

TASK_QUESTION_TYPES: dict[str, str] = {
    task: OPEN_ENDED if task in _OPEN_ENDED_TASKS else MULTI_CHOICE
    for tasks in CATEGORIES.values()
    for task in tasks
}
"""Each task's question type. ALFRED's release metadata says ``""``, for which the reference
prints "Dataset not supported" and writes no score (so ``i4_score.py`` then stops); its responses
are free text, so it is ``"open-ended"`` here (a fix, not the reference)."""

METRIC_NAMES: dict[str, str] = {OPEN_ENDED: "Rouge-L f", MULTI_CHOICE: "Accuracy"}
"""The key under which the reference's ``eval.json`` stores each question type's task score."""


def task_score(scores: Sequence[float]) -> float:
    """A task's score: the mean of its per-sample scores (``np.mean``, as the reference's
    ``evaluate.py``; for 0/1 accuracies this is exactly ``correct / n``), in [0, 1]."""
    if len(scores) == 0:
        raise ValueError("a task needs at least one scored sample")
    return float(np.mean(np.asarray(scores, dtype=np.float64)))


def category_score(task_scores: Sequence[float]) -> float:
    """``i4_score.py``'s ``dict_mean``: the unweighted mean of a category's task scores, summed
    in list order, then ``round(mean, 5) * 100``.

    The multiplication comes after the rounding, so the result carries float noise:
    ``category_score([0.427]) == 42.699999999999996``. Kept as the reference computes it.
    """
    if len(task_scores) == 0:
        raise ValueError("a category needs at least one task score")
    return round(sum(task_scores) / len(task_scores), 5) * 100


def aggregate(
    task_scores: Mapping[str, Sequence[float]],
    question_types: Mapping[str, str] | None = None,
    categories: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Per-sample scores of each task -> task scores and DEMON category scores.

    Returns ``{"tasks": {task: {"metric", "score", "n"}}, "categories": {name: score},
    "missing": {name: [task, ...]}, "category_members": {name: [task, ...]}}``: ``score`` is
    ``task_score`` (a fraction), ``metric`` the reference's name for it (``METRIC_NAMES``),
    ``n`` the number of samples. A category is scored (``category_score``, a percentage) only
    when all its tasks are present, as the reference requires; otherwise its absent tasks are
    listed under ``missing``. ``category_members`` is the category map used, so that a report
    groups the tasks as they were aggregated without knowing which map that was.

    Fixed, not kept: ``i4_score.py`` reads every task's score from the directory of the last
    task it checked (RecipeQA_ImageCoherence), opens its summary at a tuple path (a TypeError,
    so it is never written), and stops at the first task without a score (ALFRED, always).

    Args:
        task_scores: task name -> its per-sample scores. Tasks outside ``CATEGORIES`` are
            reported under ``tasks`` only.
        question_types: question types of tasks outside ``TASK_QUESTION_TYPES`` (or to
            override it), for the ``metric`` field.
        categories: category name -> its tasks, in order, for tasks outside the reference's
            29 (the built-in tasks: ``drum.builtin.demon.card.builtin_categories``). Default
            ``CATEGORIES``, the reference's map.

    Raises:
        ValueError: a task with no sample, or with no known question type.
    """
    types = {**TASK_QUESTION_TYPES, **(question_types or {})}
    tasks: dict[str, dict[str, Any]] = {}
    for task, scores in task_scores.items():
        if types.get(task) not in METRIC_NAMES:
            raise ValueError(
                f"task {task!r}: unknown question type {types.get(task)!r}; pass "
                f"question_types={{{task!r}: 'open-ended' or 'multi-choice'}}"
            )
        if len(scores) == 0:
            raise ValueError(f"task {task!r} has no scored sample")
        tasks[task] = {
            "metric": METRIC_NAMES[types[task]],
            "score": task_score(scores),
            "n": len(scores),
        }
    members_of = {
        name: list(members)
        for name, members in (CATEGORIES if categories is None else categories).items()
    }
    scored, missing = score_categories(tasks, members_of)
    return {
        "tasks": tasks,
        "categories": scored,
        "missing": missing,
        "category_members": members_of,
    }


def score_categories(
    tasks: Mapping[str, Mapping[str, Any]], categories: Mapping[str, Sequence[str]]
) -> tuple[dict[str, float], dict[str, list[str]]]:
    """``(scores, missing)``: ``category_score`` of each category whose tasks are all in
    ``tasks`` (task -> ``{"score": fraction, ...}``), and each other category's absent tasks."""
    scores: dict[str, float] = {}
    missing: dict[str, list[str]] = {}
    for name, members in categories.items():
        absent = [task for task in members if task not in tasks]
        if absent:
            missing[name] = absent
        else:
            scores[name] = category_score([tasks[task]["score"] for task in members])
    return scores, missing

"""DEMON, the demonstrative-instruction benchmark of VPG-C (``DCDmllm/Cheetah``): its reference
scoring, to the letter, with the reference's crashes fixed (see ``docs/demon.md``, "Scoring").

- ``normalize``: the reference's answer normalisation (``normalize``).
- ``rouge``: ROUGE-L F of the ``rouge==1.0.1`` package, computed iteratively.
- ``scoring``: the three per-sample scorers and ``score_sample``'s routing.
- ``categories``: the 7 categories of 29 tasks and ``aggregate``.
- ``score``: a predictions folder scored against a release -> ``demon_scores.json``.
- ``report``: its markdown tables and bar plots, rendered from that JSON.
- ``run``: an LVLM's greedy predictions per batch into ``pred.json`` (resumable), then scores.
"""

from drum.demon.categories import (
    CATEGORIES,
    METRIC_NAMES,
    MULTI_CHOICE,
    OPEN_ENDED,
    TASK_QUESTION_TYPES,
    aggregate,
    category_score,
    task_score,
)
from drum.demon.normalize import normalize
from drum.demon.report import render_report
from drum.demon.rouge import rouge_l_f
from drum.demon.run import evaluate_demon
from drum.demon.score import score_demon, score_tasks
from drum.demon.scoring import (
    IMAGE_CHOICE_TASKS,
    DemonScoringError,
    score_image_choice,
    score_multiple_choice,
    score_open_ended,
    score_sample,
)

__all__ = [
    "CATEGORIES",
    "IMAGE_CHOICE_TASKS",
    "METRIC_NAMES",
    "MULTI_CHOICE",
    "OPEN_ENDED",
    "TASK_QUESTION_TYPES",
    "DemonScoringError",
    "aggregate",
    "category_score",
    "evaluate_demon",
    "normalize",
    "render_report",
    "rouge_l_f",
    "score_image_choice",
    "score_multiple_choice",
    "score_open_ended",
    "score_demon",
    "score_sample",
    "score_tasks",
    "task_score",
]

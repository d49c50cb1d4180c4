"""DEMON, the demonstrative-instruction benchmark of VPG-C (``DCDmllm/Cheetah``): its reference
scoring, to the letter, with the reference's crashes fixed (see ``docs/demon.md``, "Scoring").

- ``normalize``: the reference's answer normalisation (``normalize``).
- ``rouge``: ROUGE-L F of the ``rouge==1.0.1`` package, computed iteratively.
- ``scorers``: the three per-sample scorers and ``score_sample``'s routing.
- ``categories``: the 7 categories of 29 tasks and ``aggregate``.
- ``evaluate``: a predictions folder scored against a release -> ``demon_scores.json``.
- ``data_report``: what looks wrong in the data (read and scored as the reference does),
  listed in ``data_report.json``.
- ``report``: its markdown tables and bar plots, rendered from that JSON.
- ``images``: a run's images decoded before any model work.
- ``run``: an LVLM's greedy predictions per batch into ``pred.json`` (resumable), then scores.
- ``lock``: one run per output folder (``demon.lock``).

The names below load lazily (PEP 562), but for ``normalize``: it shares its name with its
module, which would shadow a lazy name once imported, so it is imported here (it is light).
"""

from drum.demon.normalize import normalize
from drum.utils.lazy import lazy_exports

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
    "register_image_choice_task",
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

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "CATEGORIES": "drum.demon.categories",
        "METRIC_NAMES": "drum.demon.categories",
        "MULTI_CHOICE": "drum.demon.categories",
        "OPEN_ENDED": "drum.demon.categories",
        "TASK_QUESTION_TYPES": "drum.demon.categories",
        "aggregate": "drum.demon.categories",
        "category_score": "drum.demon.categories",
        "task_score": "drum.demon.categories",
        "render_report": "drum.demon.report",
        "rouge_l_f": "drum.demon.rouge",
        "evaluate_demon": "drum.demon.run",
        "score_demon": "drum.demon.evaluate",
        "score_tasks": "drum.demon.evaluate",
        "IMAGE_CHOICE_TASKS": "drum.demon.scorers",
        "DemonScoringError": "drum.demon.scorers",
        "register_image_choice_task": "drum.demon.scorers",
        "score_image_choice": "drum.demon.scorers",
        "score_multiple_choice": "drum.demon.scorers",
        "score_open_ended": "drum.demon.scorers",
        "score_sample": "drum.demon.scorers",
    },
)

"""Evaluation tasks as data: a demonstration pool, a query split, a prompt template, metrics.

A ``TaskSpec`` names everything an ICL evaluation needs to know about one task and nothing
about how it is run. A dataset (JSONL, see ``drum.data.jsonl``) is described by a small JSON
task file (the built-in world's tasks are ``drum.builtin.world.tasks.world_tasks``)::

    {
      "name": "my-vqa",
      "task_type": "vqa",
      "pool": "data/pool.jsonl",            # relative to the task file
      "queries": "data/test.jsonl",
      "template": {"user": "Question: {text}", "answer": "{answer}"},   # optional
      "metrics": ["vqa_accuracy"],           # optional: the task type's defaults
      "max_new_tokens": 5                    # optional: the task type's default
    }

and read with ``load_task_file``. Only ``drum.lvlm.prompt`` and the metric registry are imported
here (no torch, no pycocoevalcap).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drum.data.example import TASK_TYPES
from drum.lvlm.prompt import PromptTemplate
from drum.metrics.registry import METRICS, TASK_METRICS

# Long enough for the answer and nothing more: a VQA answer or a class label is a word or two,
# a world caption about eight words. Shorter generation is faster and cannot ramble into a
# second answer that the metrics would then have to strip.
DEFAULT_MAX_NEW_TOKENS: dict[str, int] = {"vqa": 3, "classification": 3, "caption": 8}

_TASK_FILE_FIELDS = (
    "name",
    "task_type",
    "pool",
    "queries",
    "template",
    "metrics",
    "max_new_tokens",
)
_TASK_FILE_REQUIRED = ("name", "task_type", "pool", "queries")


@dataclass(frozen=True)
class TaskSpec:
    """One ICL evaluation task.

    Attributes:
        name: unique name in a results file (``vqa``, ``my-vqa``, ...).
        task_type: one of ``TASK_TYPES``; picks default metrics and generation length.
        pool: JSONL file of candidate demonstrations.
        queries: JSONL file of evaluation queries (usually the test split).
        template: how texts and answers are phrased in the prompt.
        metrics: metric names in ``drum.metrics.METRICS``; the first is the headline
            metric of tables and plots. Empty means the task type's defaults.
        max_new_tokens: generation budget; ``None`` means the task type's default.

    Example::

        task = TaskSpec(
            name="my-vqa", task_type="vqa", pool=Path("data/pool.jsonl"),
            queries=Path("data/test.jsonl"), template=PromptTemplate(user="Question: {text}"),
        )
        task.metrics  # ("vqa_accuracy",): the task type's defaults
    """

    name: str
    task_type: str
    pool: Path
    queries: Path
    template: PromptTemplate = PromptTemplate()
    metrics: tuple[str, ...] = ()
    max_new_tokens: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"TaskSpec.name must be a non-empty string, got {self.name!r}")
        if self.task_type not in TASK_TYPES:
            raise ValueError(
                f"task {self.name!r}: task_type must be one of {TASK_TYPES}, got {self.task_type!r}"
            )
        if not isinstance(self.template, PromptTemplate):
            raise TypeError(f"task {self.name!r}: template must be a PromptTemplate")
        # Frozen dataclass: normalise in place with object.__setattr__.
        object.__setattr__(self, "pool", Path(self.pool))
        object.__setattr__(self, "queries", Path(self.queries))
        metrics = tuple(self.metrics) or tuple(TASK_METRICS[self.task_type])
        unknown = [name for name in metrics if name not in METRICS]
        if unknown:
            raise ValueError(
                f"task {self.name!r}: unknown metric(s) {unknown}; choose from {METRICS.names()}"
            )
        object.__setattr__(self, "metrics", metrics)
        max_new_tokens = (
            DEFAULT_MAX_NEW_TOKENS[self.task_type]
            if self.max_new_tokens is None
            else self.max_new_tokens
        )
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
            raise TypeError(f"task {self.name!r}: max_new_tokens must be an int")
        if max_new_tokens < 1:
            raise ValueError(
                f"task {self.name!r}: max_new_tokens must be >= 1, got {max_new_tokens}"
            )
        object.__setattr__(self, "max_new_tokens", max_new_tokens)

    @property
    def primary_metric(self) -> str:
        """The headline metric (the first of ``metrics``)."""
        return self.metrics[0]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (absolute paths), as recorded in results files."""
        return {
            "name": self.name,
            "task_type": self.task_type,
            "pool": str(self.pool.resolve()),
            "queries": str(self.queries.resolve()),
            "template": {"user": self.template.user, "answer": self.template.answer},
            "metrics": list(self.metrics),
            "max_new_tokens": self.max_new_tokens,
        }


class TaskFileError(ValueError):
    """A bad task file; the message names the file and the offending field."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


def _require_str(record: dict[str, Any], name: str, path: Path) -> str:
    value = record[name]
    if not isinstance(value, str) or not value:
        raise TaskFileError(path, f"field {name!r} must be a non-empty string, got {value!r}")
    return value


def _template(value: Any, path: Path) -> PromptTemplate:
    if not isinstance(value, dict) or not set(value) <= {"user", "answer"}:
        raise TaskFileError(
            path, "field 'template' must be an object with optional 'user' and 'answer' strings"
        )
    if not all(isinstance(v, str) for v in value.values()):
        raise TaskFileError(path, "field 'template': 'user' and 'answer' must be strings")
    try:
        return PromptTemplate(**value)
    except ValueError as error:
        raise TaskFileError(path, f"field 'template': {error}") from None


def load_task_file(path: str | os.PathLike[str]) -> TaskSpec:
    """Read a JSON task file (format in the module docstring); data paths are relative to it."""
    path = Path(path)
    if not path.is_file():
        raise TaskFileError(path, "task file not found")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise TaskFileError(path, f"not valid JSON: {error}") from None
    if not isinstance(record, dict):
        raise TaskFileError(path, f"expected a JSON object, got {type(record).__name__}")
    unknown = sorted(set(record) - set(_TASK_FILE_FIELDS))
    if unknown:  # most likely a typo that would otherwise be silently ignored
        raise TaskFileError(path, f"unknown field(s) {unknown}; allowed: {list(_TASK_FILE_FIELDS)}")
    missing = [name for name in _TASK_FILE_REQUIRED if name not in record]
    if missing:
        raise TaskFileError(path, f"missing field(s) {missing}")
    name = _require_str(record, "name", path)
    task_type = _require_str(record, "task_type", path)
    if task_type not in TASK_TYPES:
        raise TaskFileError(
            path, f"field 'task_type' must be one of {TASK_TYPES}, got {task_type!r}"
        )
    data_paths = {}
    for field_name in ("pool", "queries"):
        data_path = (path.parent / _require_str(record, field_name, path)).resolve()
        if not data_path.is_file():
            raise TaskFileError(path, f"field {field_name!r}: {data_path} not found")
        data_paths[field_name] = data_path
    template = _template(record.get("template", {}), path)
    metrics = record.get("metrics", [])
    if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
        raise TaskFileError(path, "field 'metrics' must be a list of metric names")
    unknown_metrics = [m for m in metrics if m not in METRICS]
    if unknown_metrics:
        raise TaskFileError(
            path,
            f"field 'metrics': unknown metric(s) {unknown_metrics}; choose from {METRICS.names()}",
        )
    max_new_tokens = record.get("max_new_tokens")
    if max_new_tokens is not None and (
        isinstance(max_new_tokens, bool)
        or not isinstance(max_new_tokens, int)
        or max_new_tokens < 1
    ):
        raise TaskFileError(
            path, f"field 'max_new_tokens' must be a positive integer, got {max_new_tokens!r}"
        )
    return TaskSpec(
        name=name,
        task_type=task_type,
        pool=data_paths["pool"],
        queries=data_paths["queries"],
        template=template,
        metrics=tuple(metrics),
        max_new_tokens=max_new_tokens,
    )

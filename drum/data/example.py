"""The unit of every dataset: one (image(s), text, answer(s)) example."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TASK_TYPES = ("vqa", "caption", "classification")


class NoAnswersError(ValueError):
    """An example without answers used where one is needed (a demonstration, a scored query)."""


@dataclass(frozen=True)
class Example:
    """One example of a vision-language task.

    Attributes:
        id: unique within its dataset.
        images: image paths (absolute once read from a JSONL file; relative in the file itself).
        text: the question (VQA), the prompt (captioning / classification), or an instruction.
        answers: the reference answers (VQAv2 has 10 human answers, COCO ~5 captions). The
            first one is the canonical answer used when an example serves as a demonstration.
            Empty for a query without references (e.g. a VQAv2 test-dev question, whose answers
            are not public): such an example can be embedded and retrieved for, but neither
            shown as a demonstration nor scored (``has_answers``).
        task: one of ``TASK_TYPES``.
        meta: free-form extra fields (e.g. the world's ground-truth attributes).

    Example::

        example = Example(
            id="q1", images=(Path("img/1.png"),), text="what colour is the circle?",
            answers=("red", "red", "dark red"), task="vqa",
        )
        example.answer  # "red": what the example shows when it serves as a demonstration
    """

    id: str
    images: tuple[Path, ...]
    text: str
    answers: tuple[str, ...]
    task: str
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("Example.id must be a non-empty string")
        if self.task not in TASK_TYPES:
            raise ValueError(f"Example.task must be one of {TASK_TYPES}, got {self.task!r}")

    @property
    def has_answers(self) -> bool:
        """Whether the example has reference answers (False: a query without references)."""
        return bool(self.answers)

    @property
    def answer(self) -> str:
        """The canonical answer: what a demonstration shows after its question.

        A ``NoAnswersError`` for an example without answers (``has_answers`` is False).
        """
        if not self.answers:
            raise NoAnswersError(
                f"example {self.id!r} has no answers: it cannot serve as a demonstration "
                "(nor be scored; it is a query without references)"
            )
        return self.answers[0]

    @property
    def image(self) -> Path:
        """The first image (most tasks have exactly one)."""
        if not self.images:
            raise ValueError(f"Example {self.id!r} has no image")
        return self.images[0]


def require_answered(examples: Iterable[Example], role: str, why: str) -> None:
    """A ``NoAnswersError`` unless every one of ``examples`` has answers.

    ``role`` names them in the message (``"queries"``), ``why`` says what needs the answers.

    Example::

        require_answered(queries, "queries", "hit@k compares canonical answers")
        # NoAnswersError("2 of 10 queries have no answers (the first: 'q7'); hit@k ...")
    """
    examples = list(examples)
    missing = [example.id for example in examples if not example.has_answers]
    if missing:
        raise NoAnswersError(
            f"{len(missing)} of {len(examples)} {role} have no answers (the first: "
            f"{missing[0]!r}); {why}"
        )

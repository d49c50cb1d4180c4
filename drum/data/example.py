"""The unit of every dataset: one (image(s), text, answer(s)) example."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TASK_TYPES = ("vqa", "caption", "classification")


@dataclass(frozen=True)
class Example:
    """One example of a vision-language task.

    Attributes:
        id: unique within its dataset.
        images: image paths (absolute once read from a JSONL file; relative in the file itself).
        text: the question (VQA), the prompt (captioning / classification), or an instruction.
        answers: one or more reference answers (VQAv2 has 10 human answers, COCO ~5 captions).
            The first one is the canonical answer used when an example serves as a demonstration.
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
        if not self.answers:
            raise ValueError(f"Example {self.id!r} has no answers")

    @property
    def answer(self) -> str:
        """The canonical answer: what a demonstration shows after its question."""
        return self.answers[0]

    @property
    def image(self) -> Path:
        """The first image (most tasks have exactly one)."""
        if not self.images:
            raise ValueError(f"Example {self.id!r} has no image")
        return self.images[0]

"""In-context prompts: demonstrations then a query, as an interleaved image/text conversation.

A prompt is model-agnostic data; each backend renders it with its model's own chat template:
every demonstration is a user turn (its images, then its text) followed by an assistant turn
(its answer), and the query is a final user turn awaiting the answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drum.data.example import Example


@dataclass(frozen=True)
class PromptTemplate:
    """How an example's text and answer are phrased in a prompt.

    ``user`` is formatted with ``text=example.text``; ``answer`` with ``answer=...``. The
    defaults pass both through unchanged (the built-in LVLM's training format).
    """

    user: str = "{text}"
    answer: str = "{answer}"

    def __post_init__(self) -> None:
        if "{text}" not in self.user:
            raise ValueError(f"PromptTemplate.user must contain '{{text}}', got {self.user!r}")
        if "{answer}" not in self.answer:
            raise ValueError(
                f"PromptTemplate.answer must contain '{{answer}}', got {self.answer!r}"
            )


@dataclass(frozen=True)
class Turn:
    """One example inside a prompt: its images, its (formatted) text and, for demos, answer."""

    images: tuple[Path, ...]
    text: str
    answer: str | None = None


@dataclass(frozen=True)
class ICLPrompt:
    """``k`` demonstrations (in prompt order) followed by the query."""

    demos: tuple[Turn, ...]
    query: Turn

    @property
    def images(self) -> list[Path]:
        """Every image of the prompt, in order of appearance."""
        return [image for turn in (*self.demos, self.query) for image in turn.images]

    def to_messages(self) -> list[dict[str, Any]]:
        """Hugging Face chat messages (``{"type": "image"}`` placeholders, images in order)."""
        messages: list[dict[str, Any]] = []
        for turn in (*self.demos, self.query):
            content: list[dict[str, Any]] = [{"type": "image"} for _ in turn.images]
            content.append({"type": "text", "text": turn.text})
            messages.append({"role": "user", "content": content})
            if turn.answer is not None:
                messages.append(
                    {"role": "assistant", "content": [{"type": "text", "text": turn.answer}]}
                )
        return messages


def build_prompt(
    demos: Sequence[Example], query: Example, template: PromptTemplate | None = None
) -> ICLPrompt:
    """The prompt that shows ``demos`` (with their canonical answers) and asks ``query``."""
    template = template or PromptTemplate()
    return ICLPrompt(
        demos=tuple(
            Turn(
                images=tuple(demo.images),
                text=template.user.format(text=demo.text),
                answer=template.answer.format(answer=demo.answer),
            )
            for demo in demos
        ),
        query=Turn(images=tuple(query.images), text=template.user.format(text=query.text)),
    )

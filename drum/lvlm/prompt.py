"""In-context prompts: demonstrations then a query, as an interleaved image/text conversation.

A prompt is model-agnostic data; each backend renders it with its model's own chat template.
Every demonstration is a user turn followed by an assistant turn (its answer), and the query
is a final user turn awaiting the answer. A user turn is an ordered sequence of parts, text
and images, so a prompt can say "image 1: <img> image 2: <img> which one ...";
``build_prompt`` lays every example out as its images, then its text (``Turn.of``).
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drum.data.example import Example


@dataclass(frozen=True)
class PromptTemplate:
    """How an example's text and answer are phrased in a prompt.

    ``user`` is formatted with ``text=example.text``; ``answer`` with ``answer=...``. The
    defaults pass both through unchanged (the built-in LVLM's training format). Each must
    hold its own placeholder and no other (``{foo}``, ``{0}``, ``{}``, ``{text}`` in
    ``answer``), and no lone brace (a literal one is ``{{`` or ``}}``): a ``ValueError``
    naming the field and the placeholder, raised here rather than at the first prompt built.
    """

    user: str = "{text}"
    answer: str = "{answer}"

    def __post_init__(self) -> None:
        _check_placeholders("user", self.user, "text")
        _check_placeholders("answer", self.answer, "answer")


def _check_placeholders(field: str, template: Any, placeholder: str) -> None:
    """``ValueError`` unless ``template`` formats with ``placeholder`` alone and holds it."""
    if not isinstance(template, str):
        raise ValueError(f"{field!r} must be a string, got {template!r}")
    literal = "(a literal brace is written {{ or }})"
    try:
        fields = [
            (name, conversion, spec)
            for _, name, spec, conversion in string.Formatter().parse(template)
            if name is not None
        ]
    except ValueError as error:  # "Single '}' encountered ...", "expected '}' before end ..."
        brace = "'}'" if "'}'" in str(error) and "Single" in str(error) else "'{'"
        raise ValueError(f"{field!r} has a lone {brace} in {template!r} {literal}") from None
    for name, _, _ in fields:
        if name != placeholder:
            raise ValueError(
                f"{field!r} has placeholder {{{name}}} in {template!r}; the only placeholder "
                f"there is {{{placeholder}}} {literal}"
            )
    if not fields:
        raise ValueError(f"{field!r} must contain '{{{placeholder}}}', got {template!r}")
    try:
        template.format(**{placeholder: "x"})
    except (ValueError, TypeError) as error:
        bad = next(
            (f"{{{placeholder}{'!' + c if c else ''}{':' + s if s else ''}}}")
            for _, c, s in fields
            if c or s
        )
        raise ValueError(f"{field!r} has placeholder {bad} in {template!r}: {error}") from None


@dataclass(frozen=True)
class TextPart:
    """A piece of a user turn's text, rendered where it stands among the turn's images."""

    text: str


@dataclass(frozen=True)
class ImagePart:
    """An image of a user turn, rendered as the model's image placeholder where it stands."""

    path: Path

    def __post_init__(self) -> None:
        if not isinstance(self.path, Path):  # a str path, say: stored as a Path
            object.__setattr__(self, "path", Path(self.path))


Part = TextPart | ImagePart


@dataclass(frozen=True)
class Turn:
    """One example inside a prompt: its parts (text and images, in order) and, for demos, its
    answer.

    ``Turn.of(images, text)`` builds the usual layout, images then text.
    """

    parts: tuple[Part, ...]
    answer: str | None = None

    def __post_init__(self) -> None:
        if not self.parts:
            raise ValueError("a Turn needs at least one part")
        for part in self.parts:
            # Catches the former ``Turn(images, text)`` call, which would otherwise read the
            # images as parts and the text as the answer.
            if not isinstance(part, TextPart | ImagePart):
                raise TypeError(
                    f"Turn parts must be TextPart or ImagePart, got {type(part).__name__} "
                    "(build an images-then-text turn with Turn.of(images, text))"
                )

    @classmethod
    def of(cls, images: Sequence[Path], text: str, answer: str | None = None) -> Turn:
        """The turn that shows ``images`` (in order), then ``text``."""
        # ImagePart makes a str a Path and keeps a Path as it is (no re-parse per prompt).
        return cls((*(ImagePart(image) for image in images), TextPart(text)), answer)

    @property
    def images(self) -> tuple[Path, ...]:
        """The turn's images, in order of appearance."""
        return tuple(part.path for part in self.parts if isinstance(part, ImagePart))

    @property
    def text(self) -> str:
        """The turn's text parts joined by single spaces (the text alone when there is one)."""
        return " ".join(part.text for part in self.parts if isinstance(part, TextPart))


@dataclass(frozen=True)
class ICLPrompt:
    """``k`` demonstrations (in prompt order) followed by the query."""

    demos: tuple[Turn, ...]
    query: Turn

    @property
    def images(self) -> list[Path]:
        """Every image of the prompt, in order of appearance (the order the processor and the
        model consume them in)."""
        return [image for turn in (*self.demos, self.query) for image in turn.images]

    def to_messages(self) -> list[dict[str, Any]]:
        """Hugging Face chat messages: each user turn's parts in order (``{"type": "image"}``
        placeholders, ``{"type": "text", "text": ...}``), each answer an assistant turn."""
        messages: list[dict[str, Any]] = []
        for turn in (*self.demos, self.query):
            content = [_content_item(part) for part in turn.parts]
            messages.append({"role": "user", "content": content})
            if turn.answer is not None:
                messages.append(
                    {"role": "assistant", "content": [{"type": "text", "text": turn.answer}]}
                )
        return messages


def _content_item(part: Part) -> dict[str, Any]:
    if isinstance(part, ImagePart):
        return {"type": "image"}
    return {"type": "text", "text": part.text}


def build_prompt(
    demos: Sequence[Example], query: Example, template: PromptTemplate | None = None
) -> ICLPrompt:
    """The prompt that shows ``demos`` (with their canonical answers) and asks ``query``, each
    example as its images then its text.

    Example::

        prompt = build_prompt(pool[:2], query, PromptTemplate(user="Question: {text}"))
        prompt.to_messages()  # user / assistant / user / assistant / user chat messages
    """
    template = template or PromptTemplate()
    return ICLPrompt(
        demos=tuple(
            Turn.of(
                demo.images,
                template.user.format(text=demo.text),
                answer=template.answer.format(answer=demo.answer),
            )
            for demo in demos
        ),
        query=Turn.of(query.images, template.user.format(text=query.text)),
    )


def grouped_by_demos(prompts: Sequence[ICLPrompt]) -> list[int]:
    """Positions of ``prompts`` with those showing the same demonstrations next to each other
    (groups in order of first appearance, each in its order), prompts without demonstrations
    last: the order in which a backend that shares prompt prefixes (``drum.lvlm.prefix``, a
    vLLM server's prefix caching) does the least work.

    Example::

        grouped_by_demos([build_prompt([a], q1), build_prompt([b], q1),
                          build_prompt([a], q2), build_prompt([], q1)])  # [0, 2, 1, 3]
    """
    groups: dict[tuple[Turn, ...], list[int]] = {}
    alone: list[int] = []
    for index, prompt in enumerate(prompts):
        if prompt.demos:
            groups.setdefault(prompt.demos, []).append(index)
        else:
            alone.append(index)
    return [index for rows in groups.values() for index in rows] + alone

"""The world's language: canonical captions, questions, and per-dataset conventions.

A **convention** is what a dataset's demonstrations reveal and nothing else does: the nonsense
word that names each answer (VQA), the words for colours and shapes and the word order of a
caption (captioning), the label words of the classes (classification). The built-in LVLM is
trained on episodes with freshly sampled conventions, so it can only answer a query of a new
dataset by reading its demonstrations: as for real LVLMs, which demonstrations it sees decides
what it can answer.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from drum.builtin.world.scene import COLOURS, COUNTS, SHAPES, SIZES, Scene

QUESTION_TYPES = ("shape", "colour", "size", "count")
ANSWER_VALUES: dict[str, tuple[str, ...]] = {
    "shape": SHAPES,
    "colour": COLOURS,
    "size": SIZES,
    "count": tuple(str(c) for c in COUNTS),
}
COUNT_WORDS = {1: "one", 2: "two", 3: "three"}
PLURALS = {
    "circle": "circles",
    "square": "squares",
    "triangle": "triangles",
    "cross": "crosses",
    "diamond": "diamonds",
}
# Caption slots; a captioning convention orders them.
CAPTION_SLOTS = ("count", "size", "colour", "shape")

# Several phrasings per question type, each naming some of the attributes it does not ask
# about (as real questions name their objects): text similarity then finds the same question
# type and overlapping content, never the answer itself.
QUESTION_TEMPLATES: dict[str, tuple[str, ...]] = {
    "shape": (
        "what shape is the {colour} object ?",
        "which shape do the {size} {colour} things have ?",
        "what is the shape of the {colour} objects ?",
    ),
    "colour": (
        "what colour is the {shape} ?",
        "which colour are the {size} {shapes} ?",
        "what is the colour of the {shapes} ?",
    ),
    "size": (
        "what size is the {colour} {shape} ?",
        "how big are the {colour} {shapes} ?",
        "what is the size of the {shapes} ?",
    ),
    "count": (
        "how many {colour} {shapes} are there ?",
        "how many {size} {shapes} are in the picture ?",
        "what is the number of {colour} objects ?",
    ),
}
CAPTION_PROMPT = "describe the image ."
CLASSIFICATION_PROMPT = "what is this ?"


def _nonsense_words() -> tuple[str, ...]:
    """64 pronounceable nonsense words (consonant-vowel-consonant), none an English word here."""
    onsets, vowels, codas = "bdfgklmpstvz", "aeiou", "xkpgz"
    words = ["".join(parts) for parts in itertools.product(onsets, vowels, codas)]
    # A fixed, spread-out selection so the list is stable across versions of this function.
    return tuple(words[i] for i in range(0, len(words), len(words) // 64))[:64]


NONSENSE_WORDS = _nonsense_words()


def canonical_caption(scene: Scene) -> str:
    """Plain English caption, e.g. ``"two small red circles"``: what the embedder trains on."""
    noun = scene.shape if scene.count == 1 else PLURALS[scene.shape]
    return f"{COUNT_WORDS[scene.count]} {scene.size} {scene.colour} {noun}"


def question_text(scene: Scene, question_type: str, template_index: int) -> str:
    """The ``template_index``-th phrasing of a ``question_type`` question about ``scene``."""
    template = QUESTION_TEMPLATES[question_type][template_index]
    return template.format(
        shape=scene.shape, shapes=PLURALS[scene.shape], colour=scene.colour, size=scene.size
    )


def answer_value(scene: Scene, question_type: str) -> str:
    """The true value a question asks about (before the convention names it)."""
    return str(scene.attributes()[question_type])


@dataclass(frozen=True)
class Convention:
    """What one dataset's demonstrations reveal.

    Attributes:
        vqa_words: ``"qtype=value"`` -> the nonsense word that answers it.
        caption_words: colour / shape value -> the nonsense word a caption uses for it.
        caption_order: the order of the ``CAPTION_SLOTS`` in a caption.
        class_attribute: the attribute that defines the classes of the classification task.
        class_words: value of ``class_attribute`` -> the nonsense label word.
    """

    vqa_words: dict[str, str]
    caption_words: dict[str, str]
    caption_order: tuple[str, ...]
    class_attribute: str
    class_words: dict[str, str]

    def vqa_answer(self, scene: Scene, question_type: str) -> str:
        return self.vqa_words[f"{question_type}={answer_value(scene, question_type)}"]

    def caption(self, scene: Scene, drop: tuple[str, ...] = ()) -> str:
        words = {
            "count": COUNT_WORDS[scene.count],
            "size": scene.size,
            "colour": self.caption_words[scene.colour],
            "shape": self.caption_words[scene.shape],
        }
        return " ".join(words[slot] for slot in self.caption_order if slot not in drop)

    def class_label(self, scene: Scene) -> str:
        return self.class_words[str(scene.attributes()[self.class_attribute])]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Convention:
        return cls(
            vqa_words=dict(data["vqa_words"]),
            caption_words=dict(data["caption_words"]),
            caption_order=tuple(data["caption_order"]),
            class_attribute=str(data["class_attribute"]),
            class_words=dict(data["class_words"]),
        )


def sample_convention(rng: np.random.Generator, class_attribute: str = "shape") -> Convention:
    """A random convention; every word is drawn without replacement from ``NONSENSE_WORDS``.

    Words are distinct within each task, so an answer never leaks which value it names.
    """
    keys = [f"{q}={v}" for q in QUESTION_TYPES for v in ANSWER_VALUES[q]]
    vqa = rng.choice(len(NONSENSE_WORDS), size=len(keys), replace=False)
    caption_keys = list(COLOURS) + list(SHAPES)
    caption = rng.choice(len(NONSENSE_WORDS), size=len(caption_keys), replace=False)
    class_values = ANSWER_VALUES[class_attribute]
    classes = rng.choice(len(NONSENSE_WORDS), size=len(class_values), replace=False)
    order = tuple(CAPTION_SLOTS[i] for i in rng.permutation(len(CAPTION_SLOTS)))
    return Convention(
        vqa_words={k: NONSENSE_WORDS[i] for k, i in zip(keys, vqa, strict=True)},
        caption_words={k: NONSENSE_WORDS[i] for k, i in zip(caption_keys, caption, strict=True)},
        caption_order=order,
        class_attribute=class_attribute,
        class_words={k: NONSENSE_WORDS[i] for k, i in zip(class_values, classes, strict=True)},
    )


def plain_convention(class_attribute: str = "shape") -> Convention:
    """The plain-English convention: every answer is the value's own word (``red``, ``two``).

    The built-in LVLM also trains on it, as real LVLMs come to ICL already knowing the English
    names of what they see: reading attributes off images is then learned directly, and in
    context it only has to learn to map them to a dataset's words.
    """
    english = {str(c): COUNT_WORDS[c] for c in COUNTS}
    return Convention(
        vqa_words={f"{q}={v}": english.get(v, v) for q in QUESTION_TYPES for v in ANSWER_VALUES[q]},
        caption_words={value: value for value in (*COLOURS, *SHAPES)},
        caption_order=CAPTION_SLOTS,
        class_attribute=class_attribute,
        class_words={v: english.get(v, v) for v in ANSWER_VALUES[class_attribute]},
    )


def vocabulary() -> list[str]:
    """Every word the world's texts and answers can contain (for word-level tokenizers)."""
    words: set[str] = set(NONSENSE_WORDS)
    words.update(SHAPES, PLURALS.values(), COLOURS, SIZES, COUNT_WORDS.values())
    words.update(str(c) for c in COUNTS)
    for templates in QUESTION_TEMPLATES.values():
        for template in templates:
            words.update(w for w in template.split() if not w.startswith("{"))
    words.update(CAPTION_PROMPT.split(), CLASSIFICATION_PROMPT.split())
    return sorted(words)

"""The question forms about two-object scenes, with their paraphrases, in four groups.

* ``primary``: the big object, what a caption-trained Q-Former keeps (``caption``,
  ``big_colour``, ``big_shape``);
* ``near`` (held out from VPG-C's data): the small object's colour or shape asked of one image,
  a form the synthetic data never uses;
* ``far`` (held out): other skills on the same detail: is the small object the colour of the
  big one (one image), which of two images has a small ``<colour>`` object, and a two-turn
  dialogue whose second turn asks the small object's attribute;
* ``synthetic``: two-image questions about an *edited pair* (the second image is the first
  with one attribute of one object changed): the edited object's attribute in image A or B
  (``edit_value``), which attribute changed (``edit_attribute``), whether an attribute stayed
  the same (``edit_same``), and the *other* object's attribute (``edit_other``: the edit must
  not move that answer).

The base's stage A learns every form about both objects; VPG-C's synthetic data uses only the
synthetic forms with the small object edited. A form is a function ``(rng, pool, objects)``
to a ``Question`` whose images are keys of a ``ScenePool``; ``objects`` are the objects a
synthetic form may edit (the other forms ignore it). No held-out form's wording appears in a
synthetic form (``tests/builtin/blip2/test_questions.py`` checks it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np

from drum.builtin.blip2.scenes import (
    ATTRIBUTES,
    OBJECTS,
    TwoObjectScene,
    other_value,
    sample_scene,
)

Key = tuple[int, str | None, str | None]  # (base scene, edited object, edited attribute)
GROUPS = ("primary", "near", "far", "synthetic")
INSTRUCTION = "answer in one or two words . "


class ScenePool:
    """``n`` base scenes drawn from ``seed`` and their edited twins, made on demand.

    Key ``(i, None, None)`` is base scene ``i``; ``(i, obj, attribute)`` is its twin with
    ``obj``'s ``attribute`` changed to another value (drawn once per key, deterministic)."""

    def __init__(self, seed: int, n: int) -> None:
        self.seed, self.n = seed, n
        rng = np.random.default_rng([seed, 0])
        self._base = [sample_scene(rng) for _ in range(n)]
        self._cache: dict[Key, TwoObjectScene] = {}

    def base(self, rng: np.random.Generator) -> Key:
        return (int(rng.integers(self.n)), None, None)

    def twin(self, key: Key, obj: str, attribute: str) -> Key:
        return (key[0], obj, attribute)

    def scene(self, key: Key) -> TwoObjectScene:
        index, obj, attribute = key
        base = self._base[index]
        if obj is None or attribute is None:
            return base
        if key not in self._cache:
            rng = np.random.default_rng(
                [self.seed, 1, index, OBJECTS.index(obj), ATTRIBUTES.index(attribute)]
            )
            value = other_value(rng, attribute, base.value(obj, attribute))
            self._cache[key] = base.edited(obj, attribute, value)
        return self._cache[key]

    def with_corners(self, corners: list[int]) -> ScenePool:
        """The same pool with base scene ``i``'s small object moved to ``corners[i]`` (twins
        follow their base scene)."""
        if len(corners) != self.n:
            raise ValueError(f"{len(corners)} corners for {self.n} scenes")
        moved = ScenePool.__new__(ScenePool)
        moved.seed, moved.n, moved._cache = self.seed, self.n, {}
        moved._base = [replace(s, corner=c) for s, c in zip(self._base, corners, strict=True)]
        return moved

    def keys(self) -> list[Key]:
        """Every base scene and every twin (what training encodes once)."""
        return [
            (i, obj, attribute)
            for i in range(self.n)
            for obj, attribute in ((None, None), *((o, a) for o in OBJECTS for a in ATTRIBUTES))
        ]


@dataclass(frozen=True)
class Question:
    """``context`` with ``{image#k}`` for ``images[k - 1]``, and its one right ``response``."""

    context: str
    images: tuple[Key, ...]
    response: str
    meta: dict[str, Any] = field(default_factory=dict)


Form = Callable[[np.random.Generator, ScenePool, tuple[str, ...]], Question]


class FormSpec(NamedTuple):
    group: str
    form: Form
    chance: float  # of answering right by guessing uniformly among its answers


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _other(obj: str) -> str:
    return "big" if obj == "small" else "small"


# ------------------------------------------------------------------------- one image
SINGLE_ASK = (
    "what {attr} is the {obj} object ?",
    "what is the {attr} of the {obj} object ?",
    "tell me the {attr} of the {obj} object .",
)
CAPTION_ASK = ("describe the big object .", "caption the image .", "what is the big object ?")


def caption(rng: np.random.Generator, pool: ScenePool, objects: tuple[str, ...]) -> Question:
    key = pool.base(rng)
    scene = pool.scene(key)
    return Question(
        "{image#1} " + _pick(rng, CAPTION_ASK), (key,), f"{scene.big_colour} {scene.big_shape}"
    )


def _single(obj: str, attribute: str) -> Form:
    def form(rng: np.random.Generator, pool: ScenePool, objects: tuple[str, ...]) -> Question:
        key = pool.base(rng)
        ask = _pick(rng, SINGLE_ASK).format(attr=attribute, obj=obj)
        return Question("{image#1} " + ask, (key,), pool.scene(key).value(obj, attribute))

    return form


# --------------------------------------------------------------------------- far
MATCH_ASK = (
    "is the small object the same colour as the big object ?",
    "do the two objects have the same colour ?",
)
WHICH_ASK = (
    "which image has a small {value} object ? the first or the second ?",
    "in which image is the small object {value} , the first or the second ?",
)
DIALOGUE = (
    "human : what {attr} is the big object ? assistant : {value} . "
    "human : and the small one ? assistant :"
)


def _draw(rng: np.random.Generator, pool: ScenePool, accept: Callable[[Key], bool]) -> Key:
    """A base scene of ``pool`` that ``accept``s (rejection; the pool must hold one)."""
    for _ in range(100 * pool.n):
        key = pool.base(rng)
        if accept(key):
            return key
    raise ValueError(f"no scene of this pool of {pool.n} fits the question: use a larger pool")


def colour_match(rng: np.random.Generator, pool: ScenePool, objects: tuple[str, ...]) -> Question:
    """One image; yes and no equally likely (rejection over the pool)."""
    want = bool(rng.integers(2))
    key = _draw(
        rng, pool, lambda k: (pool.scene(k).small_colour == pool.scene(k).big_colour) == want
    )
    return Question("{image#1} " + _pick(rng, MATCH_ASK), (key,), "yes" if want else "no")


def which_image(rng: np.random.Generator, pool: ScenePool, objects: tuple[str, ...]) -> Question:
    """Two independent images whose small objects differ in colour; the answer is uniform."""
    first = pool.base(rng)
    colour = pool.scene(first).small_colour
    second = _draw(rng, pool, lambda k: pool.scene(k).small_colour != colour)
    answer = int(rng.integers(2))
    value = pool.scene((first, second)[answer]).small_colour
    ask = _pick(rng, WHICH_ASK).format(value=value)
    return Question("{image#1} {image#2} " + ask, (first, second), ("first", "second")[answer])


def dialogue(rng: np.random.Generator, pool: ScenePool, objects: tuple[str, ...]) -> Question:
    """The first turn asks (and answers) an attribute of the big object; the second, "and the
    small one ?", the same attribute of the small object."""
    key = pool.base(rng)
    scene = pool.scene(key)
    attribute = _pick(rng, ATTRIBUTES)
    turns = DIALOGUE.format(attr=attribute, value=scene.value("big", attribute))
    return Question("{image#1} " + turns, (key,), scene.value("small", attribute))


# ------------------------------------------------------------------- synthetic (pairs)
EDIT_INTRO = (
    "the {obj} object changed between image a and image b .",
    "image b is image a with the {obj} object edited .",
    "one attribute of the {obj} object differs between the two images .",
    "the two images differ only in the {obj} object .",
    "the {obj} object was edited from the first image to the second .",
    "look at the {obj} object in both images .",
)
VALUE_ASK = (
    ("what {attr} is it in image a ?", 0),
    ("what {attr} is it in image b ?", 1),
    ("what {attr} is the {obj} object in the first image ?", 0),
    ("what {attr} is the {obj} object in the second image ?", 1),
    ("in image a , what {attr} does the {obj} object have ?", 0),
    ("in image b , what {attr} does the {obj} object have ?", 1),
    ("before the edit , what {attr} was it ?", 0),
    ("after the edit , what {attr} is it ?", 1),
)
ATTRIBUTE_ASK = (
    "which attribute of the {obj} object changed ? colour or shape ?",
    "what changed about the {obj} object , its colour or its shape ?",
    "was the colour or the shape of the {obj} object edited ?",
    "name the attribute of the {obj} object that changed : colour or shape .",
)
SAME_ASK = (
    "is the {obj} object in image a the same {attr} as in image b ?",
    "does the {obj} object keep its {attr} from image a to image b ?",
    "is the {attr} of the {obj} object unchanged ?",
    "do the {obj} objects of the two images share their {attr} ?",
)
OTHER_ASK = (
    ("what {attr} is the {other} object in image a ?", 0),
    ("what {attr} is the {other} object in image b ?", 1),
    ("in the second image , what {attr} does the {other} object have ?", 1),
    ("what {attr} is the {other} object in the first image ?", 0),
)


def _edited_pair(
    rng: np.random.Generator, pool: ScenePool, objects: tuple[str, ...]
) -> tuple[str, str, tuple[Key, Key], tuple[TwoObjectScene, TwoObjectScene]]:
    obj, attribute = _pick(rng, objects), _pick(rng, ATTRIBUTES)
    first = pool.base(rng)
    second = pool.twin(first, obj, attribute)
    return obj, attribute, (first, second), (pool.scene(first), pool.scene(second))


def _pair_context(rng: np.random.Generator, obj: str, ask: str) -> str:
    return "{image#1} {image#2} " + _pick(rng, EDIT_INTRO).format(obj=obj) + " " + ask


def edit_value(rng: np.random.Generator, pool: ScenePool, objects: tuple[str, ...]) -> Question:
    """The edited object's attribute (the changed one or not, equally) in image A or B."""
    obj, edited, keys, scenes = _edited_pair(rng, pool, objects)
    attribute = _pick(rng, ATTRIBUTES)
    ask, image = VALUE_ASK[int(rng.integers(len(VALUE_ASK)))]
    return Question(
        _pair_context(rng, obj, ask.format(attr=attribute, obj=obj)),
        keys,
        scenes[image].value(obj, attribute),
        {"object": obj, "edited": edited, "asked": attribute, "image": image},
    )


def edit_attribute(rng: np.random.Generator, pool: ScenePool, objects: tuple[str, ...]) -> Question:
    obj, edited, keys, _ = _edited_pair(rng, pool, objects)
    ask = _pick(rng, ATTRIBUTE_ASK).format(obj=obj)
    return Question(_pair_context(rng, obj, ask), keys, edited, {"object": obj, "edited": edited})


def edit_same(rng: np.random.Generator, pool: ScenePool, objects: tuple[str, ...]) -> Question:
    """Asks the edited attribute or the other one equally: "no" or "yes" equally."""
    obj, edited, keys, _ = _edited_pair(rng, pool, objects)
    attribute = _pick(rng, ATTRIBUTES)
    ask = _pick(rng, SAME_ASK).format(obj=obj, attr=attribute)
    answer = "no" if attribute == edited else "yes"
    meta = {"object": obj, "edited": edited, "asked": attribute}
    return Question(_pair_context(rng, obj, ask), keys, answer, meta)


def edit_other(rng: np.random.Generator, pool: ScenePool, objects: tuple[str, ...]) -> Question:
    """An attribute of the object that was not edited: the edit must not change the answer."""
    obj, edited, keys, scenes = _edited_pair(rng, pool, objects)
    other, attribute = _other(obj), _pick(rng, ATTRIBUTES)
    ask, image = OTHER_ASK[int(rng.integers(len(OTHER_ASK)))]
    return Question(
        _pair_context(rng, obj, ask.format(attr=attribute, other=other)),
        keys,
        scenes[image].value(other, attribute),
        {
            "object": obj,
            "edited": edited,
            "asked_object": other,
            "asked": attribute,
            "image": image,
        },
    )


FORMS: dict[str, FormSpec] = {
    "caption": FormSpec("primary", caption, 1 / 30),
    "big_colour": FormSpec("primary", _single("big", "colour"), 1 / 6),
    "big_shape": FormSpec("primary", _single("big", "shape"), 1 / 5),
    "small_colour": FormSpec("near", _single("small", "colour"), 1 / 6),
    "small_shape": FormSpec("near", _single("small", "shape"), 1 / 5),
    "colour_match": FormSpec("far", colour_match, 1 / 2),
    "which_image": FormSpec("far", which_image, 1 / 2),
    "dialogue": FormSpec("far", dialogue, (1 / 6 + 1 / 5) / 2),
    "edit_value": FormSpec("synthetic", edit_value, (1 / 6 + 1 / 5) / 2),
    "edit_attribute": FormSpec("synthetic", edit_attribute, 1 / 2),
    "edit_same": FormSpec("synthetic", edit_same, 1 / 2),
    "edit_other": FormSpec("synthetic", edit_other, (1 / 6 + 1 / 5) / 2),
}


def forms_in(*groups: str) -> list[str]:
    return [name for name, spec in FORMS.items() if spec.group in groups]


def vocabulary() -> list[str]:
    """Every word any form can say or answer (the LM's vocabulary)."""
    from drum.builtin.world.scene import COLOURS, SHAPES

    texts = [INSTRUCTION, *CAPTION_ASK, *MATCH_ASK, *WHICH_ASK, DIALOGUE, *ATTRIBUTE_ASK]
    texts += [*SINGLE_ASK, *EDIT_INTRO, *SAME_ASK, *(a for a, _ in VALUE_ASK + OTHER_ASK)]
    texts += [" ".join(COLOURS), " ".join(SHAPES), "yes no first second colour shape big small"]
    words: set[str] = set()
    for text in texts:
        for word in text.replace("{", " ").replace("}", " ").split():
            words.add(word.lower())
    return sorted(words - {"attr", "obj", "other", "value", "image#1", "image#2"})

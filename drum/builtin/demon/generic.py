"""Generic answer formats the built-in DEMON base LVLM is trained on, disjoint from the tasks.

The base has to be able to answer in the benchmark's forms (one attribute word, a caption,
``same`` / ``different``, ``Image B``) without ever seeing a benchmark task. These formats teach
those forms on questions the tasks do not ask:

=================  ======  ==============================================================
format             images  what it asks
=================  ======  ==============================================================
``Describe``       1       the image's caption
``AskOne``         1       one attribute of the image (open-ended)
``AskOneChoice``   1       one attribute, answered from a choice list of its values
``AskOfTwo``       2       one attribute of the first or second image
``CompareTwo``     2       same or different shape, colour or size (never count or places)
``PickOfTwo``      2-3     which image shows one named attribute value (``Image A``..``C``)
=================  ======  ==============================================================

Against the tasks (``drum.builtin.demon.tasks``): no dialogue (ShapeChat asks a third image in
a three-image dialogue), no sequence (ShapeStory, MissingPanel), no edit or move
(SpotTheEdit's ``old to new``, MovedObject's cell names: never an answer here), no blank to
fill (CaptionCloze), no knowledge base (ShapeFacts), no handwritten digits (DigitBoard), no
count or place comparison (SameCount, SamePlaces), no two-attribute combination over four
images (WhichImage; ``Image D`` is never an answer here). Each format has its own three
instructions, none a task's.
"""

from __future__ import annotations

import numpy as np

from drum.builtin.demon.scenes import (
    ATTRIBUTES,
    LETTERS,
    ORDINALS,
    VALUES,
    caption,
    distinct_values,
    edit,
    make_scene,
    value_of,
    word,
)
from drum.builtin.demon.tasks import Item, TaskGenerator, _image_choices, _images, _pick
from drum.builtin.world.language import PLURALS
from drum.demon.categories import MULTI_CHOICE, OPEN_ENDED

GENERIC_CATEGORY = "generic"

_QUESTION = {
    "count": "how many objects are in {where} ?",
    "size": "what size are the objects in {where} ?",
    "colour": "what colour are the objects in {where} ?",
    "shape": "what shape are the objects in {where} ?",
}


def _values(attribute: str) -> list[str]:
    return [word(attribute, v) for v in VALUES[attribute]]


def describe(rng: np.random.Generator, split: str) -> Item:
    scene = make_scene(rng)
    return Item(context="{image#1} describe the image .", scenes=(scene,), response=caption(scene))


def ask_one(rng: np.random.Generator, split: str) -> Item:
    scene = make_scene(rng)
    attribute = _pick(rng, ATTRIBUTES)
    return Item(
        context="{image#1} " + _QUESTION[attribute].format(where="the image"),
        scenes=(scene,),
        response=value_of(scene, attribute),
        meta={"attribute": attribute},
    )


def ask_one_choice(rng: np.random.Generator, split: str) -> Item:
    item = ask_one(rng, split)
    choices = _values(item.meta["attribute"])
    return Item(
        context=item.context,
        scenes=item.scenes,
        response=item.response,
        choices=tuple(choices[int(i)] for i in rng.permutation(len(choices))),
        meta=item.meta,
    )


def ask_of_two(rng: np.random.Generator, split: str) -> Item:
    scenes = (make_scene(rng), make_scene(rng))
    attribute = _pick(rng, ATTRIBUTES)
    target = int(rng.integers(2))
    where = f"the {ORDINALS[target]} image"
    return Item(
        context=f"{_images(2)} " + _QUESTION[attribute].format(where=where),
        scenes=scenes,
        response=value_of(scenes[target], attribute),
        meta={"attribute": attribute, "target_image": target},
    )


COMPARED = ("shape", "colour", "size")  # never count (SameCount) or places (SamePlaces)


def compare_two(rng: np.random.Generator, split: str) -> Item:
    attribute = _pick(rng, COMPARED)
    first = make_scene(rng)
    same = bool(rng.integers(2))
    second = make_scene(rng, **{attribute: first.attributes()[attribute]})
    if not same:
        second = edit(second, attribute, rng)
    return Item(
        context=f"{_images(2)} do the two images show the same {attribute} ?",
        scenes=(first, second),
        response="same" if same else "different",
        choices=("same", "different"),
        meta={"attribute": attribute},
    )


def pick_of_two(rng: np.random.Generator, split: str) -> Item:
    attribute = _pick(rng, ATTRIBUTES)
    n = min(int(rng.integers(2, 4)), len(VALUES[attribute]))  # two sizes only
    values = distinct_values(attribute, n, rng)
    scenes = tuple(make_scene(rng, **{attribute: v}) for v in values)
    target = int(rng.integers(n))
    named = word(attribute, values[target])
    description = PLURALS[named] if attribute == "shape" else f"{named} objects"
    return Item(
        context=f"which image shows {description} ?",
        scenes=scenes,
        response=f"Image {LETTERS[target]}",
        choices=_image_choices(1, n),
        meta={"attribute": attribute, "answer_index": target},
    )


GENERIC_TASKS: dict[str, TaskGenerator] = {
    "Describe": TaskGenerator(GENERIC_CATEGORY, OPEN_ENDED, describe),
    "AskOne": TaskGenerator(GENERIC_CATEGORY, OPEN_ENDED, ask_one),
    "AskOneChoice": TaskGenerator(GENERIC_CATEGORY, MULTI_CHOICE, ask_one_choice),
    "AskOfTwo": TaskGenerator(GENERIC_CATEGORY, OPEN_ENDED, ask_of_two),
    "CompareTwo": TaskGenerator(GENERIC_CATEGORY, MULTI_CHOICE, compare_two),
    "PickOfTwo": TaskGenerator(GENERIC_CATEGORY, MULTI_CHOICE, pick_of_two),
}
"""The base LVLM's training formats (see the module docstring); not benchmark tasks."""

GENERIC_INSTRUCTIONS: dict[str, tuple[str, ...]] = {
    "Describe": (
        "say what the picture shows . ",
        "give a short caption . ",
        "caption this picture . ",
    ),
    "AskOne": (
        "answer the question about the picture . ",
        "look at the picture and answer in one word . ",
        "reply to the question . ",
    ),
    "AskOneChoice": (
        "answer the question with one word of the list . ",
        "pick the right word for the picture . ",
        "choose the answer from the list . ",
    ),
    "AskOfTwo": (
        "answer about the picture the question names . ",
        "two pictures are shown . answer the question . ",
        "look at the named picture and reply . ",
    ),
    "CompareTwo": (
        "answer same or different . ",
        "compare the two pictures on one property . ",
        "do the pictures agree ? ",
    ),
    "PickOfTwo": (
        "pick the picture that fits . ",
        "answer with the picture the question names . ",
        "choose a picture from the list . ",
    ),
}

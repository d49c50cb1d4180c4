"""The built-in DEMON-style tasks: one generator per task, registered in ``DEMON_TASKS``.

Each generator draws one item from ``rng``: the scenes to render (an image each), the context
with its ``{image#k}`` placeholders, the choices (None for open-ended tasks), the response and
the metadata that determines it (the scenes' ground truth, the edit made, the attribute asked).
Every task asks about instruction-specific detail (counts, sizes, one small edit, a value in
one of several images) that a one-line caption per image does not settle on its own: the
question names which image and which attribute matter. See ``docs/demon.md``, "Built-in tasks".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np

from drum.builtin.demon.scenes import (
    ATTRIBUTES,
    DIGIT_CELL,
    LETTERS,
    ORDINALS,
    VALUES,
    caption,
    cell_name,
    digit_indices,
    distinct_values,
    edit,
    make_scene,
    move_one,
    reshuffle,
    value_of,
    with_value,
    word,
)
from drum.builtin.world.language import NONSENSE_WORDS, PLURALS
from drum.builtin.world.scene import GRID, SHAPES, Scene
from drum.demon.categories import MULTI_CHOICE, OPEN_ENDED
from drum.demon.scorers import register_image_choice_task


@dataclass(frozen=True)
class Item:
    """One generated sample before rendering: ``scenes[k]`` is ``{image#k+1}``, drawn with the
    handwritten digit ``digits[k]`` (an index into scikit-learn's digits) when it is not None."""

    context: str
    scenes: tuple[Scene, ...]
    response: str
    choices: tuple[str, ...] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    digits: tuple[int | None, ...] | None = None


Generator = Callable[[np.random.Generator, str], Item]


class TaskGenerator(NamedTuple):
    """A built-in task: its DEMON category, its question type and the generator of its items
    (not a ``drum.tasks.spec.TaskSpec``, which names the files of an evaluation task)."""

    category: str
    question_type: str
    generator: Generator


def _pick(rng: np.random.Generator, options: tuple | list) -> Any:
    return options[int(rng.integers(len(options)))]


def _images(n: int, start: int = 1) -> str:
    return " ".join(f"{{image#{k}}}" for k in range(start, start + n))


def _image_choices(first: int, n: int = 4) -> tuple[str, ...]:
    return tuple(f"Image {LETTERS[i]}: {{image#{first + i}}}" for i in range(n))


_ASK = {
    "count": "how many objects are in the {ordinal} image ?",
    "size": "what size are the objects in the {ordinal} image ?",
    "colour": "what colour are the objects in the {ordinal} image ?",
    "shape": "what shape are the objects in the {ordinal} image ?",
}


def shape_chat(rng: np.random.Generator, split: str) -> Item:
    """Multi-modal dialogue: two answered turns about two images, then "and the <k>th image ?",
    which asks the second turn's attribute of the remaining image."""
    scenes = tuple(make_scene(rng) for _ in range(3))
    order = [int(i) for i in rng.permutation(3)]
    first, second = rng.choice(len(ATTRIBUTES), size=2, replace=False)
    attr_a, attr_b = ATTRIBUTES[int(first)], ATTRIBUTES[int(second)]
    turns = [
        f"human : {_ASK[attr_a].format(ordinal=ORDINALS[order[0]])} "
        f"assistant : {value_of(scenes[order[0]], attr_a)} .",
        f"human : {_ASK[attr_b].format(ordinal=ORDINALS[order[1]])} "
        f"assistant : {value_of(scenes[order[1]], attr_b)} .",
        f"human : and the {ORDINALS[order[2]]} image ? assistant :",
    ]
    return Item(
        context=f"{_images(3)} " + " ".join(turns),
        scenes=scenes,
        response=value_of(scenes[order[2]], attr_b),
        meta={"asked_image": order[2], "attribute": attr_b},
    )


def _alternating_story(rng: np.random.Generator, n_frames: int) -> tuple[list[Scene], str]:
    """Frames where one attribute alternates between two values, the others fixed; the
    objects are redrawn in fresh cells each frame."""
    attribute = _pick(rng, ATTRIBUTES)
    base = make_scene(rng)
    other = edit(base, attribute, rng)
    frames = [reshuffle(base if i % 2 == 0 else other, rng) for i in range(n_frames)]
    return frames, attribute


def shape_story(rng: np.random.Generator, split: str) -> Item:
    """Visual storytelling: three frames in which one attribute alternates; describe the
    fourth (its canonical caption)."""
    frames, attribute = _alternating_story(rng, 4)
    return Item(
        context=f"{_images(3)} what comes next ?",
        scenes=tuple(frames[:3]),
        response=caption(frames[3]),
        meta={"attribute": attribute, "next_scene": frames[3].to_meta()},
    )


EDIT_ATTRIBUTES = ("colour", "shape", "size", "count")


def spot_the_edit(rng: np.random.Generator, split: str) -> Item:
    """Visual relation inference: two near-identical scenes (same noise, same cells) that
    differ in one attribute; answer "<old> to <new>"."""
    before = make_scene(rng, free_cells=tuple(range(1, GRID * GRID)))
    attribute = _pick(rng, EDIT_ATTRIBUTES)
    after = edit(before, attribute, rng)
    old, new = value_of(before, attribute), value_of(after, attribute)
    return Item(
        context=f"{_images(2)} what changed ?",
        scenes=(before, after),
        response=f"{old} to {new}",
        meta={"edit": {"attribute": attribute, "from": old, "to": new}},
    )


def moved_object(rng: np.random.Generator, split: str) -> Item:
    """Visual relation inference: two near-identical scenes in which one object moved to
    another cell; answer "<from cell> to <to cell>". The two images have the same caption."""
    before = make_scene(rng)
    after, source, target = move_one(before, rng)
    return Item(
        context=f"{_images(2)} which object moved ?",
        scenes=(before, after),
        response=f"{cell_name(source)} to {cell_name(target)}",
        meta={"move": {"from": source, "to": target}},
    )


def missing_panel(rng: np.random.Generator, split: str) -> Item:
    """Multi-modal cloze (image choice): a four-frame alternating story with one frame
    blanked; pick its image among four candidates: the true frame T, T in the wrong phase of
    the alternating attribute (the neighbours' value), T with another attribute edited, and T
    with both. The four form a cycle of one-attribute steps, so no candidate is the centre of
    the others: only the story tells which is right."""
    frames, attribute = _alternating_story(rng, 4)
    blank = int(rng.integers(1, 4))
    truth = frames[blank]
    other = _pick(rng, [a for a in ATTRIBUTES if a != attribute])
    wrong_phase = with_value(truth, attribute, frames[blank - 1].attributes()[attribute], rng)
    edited = edit(truth, other, rng)
    both = with_value(wrong_phase, other, edited.attributes()[other], rng)
    candidates = [truth, *(reshuffle(scene, rng) for scene in (wrong_phase, edited, both))]
    order = [int(i) for i in rng.permutation(4)]
    shown = [f for i, f in enumerate(frames) if i != blank]
    pieces = [f"{{image#{i + 1}}}" for i in range(3)]
    pieces.insert(blank, "blank")
    answer = order.index(0)
    return Item(
        context=" ".join(pieces) + " which image fills the blank ?",
        scenes=(*shown, *(candidates[i] for i in order)),
        response=f"Image {LETTERS[answer]}",
        choices=_image_choices(4),
        meta={"attribute": attribute, "blank": blank, "edited": other, "answer_index": answer},
    )


def caption_cloze(rng: np.random.Generator, split: str) -> Item:
    """Multi-modal cloze (text): three captioned images that differ in one attribute; one
    caption has that attribute's word blanked; choose the word among all its values."""
    attribute = _pick(rng, ATTRIBUTES)
    fixed = {} if attribute != "count" else {"count": int(_pick(rng, (2, 3)))}
    base = make_scene(rng, **fixed)
    values = (2, 3) if attribute == "count" else VALUES[attribute]
    scenes = [
        reshuffle(with_value(base, attribute, _pick(rng, values), rng), rng) for _ in range(3)
    ]
    blank = int(rng.integers(3))
    slot = {"count": 0, "size": 1, "colour": 2, "shape": 3}[attribute]
    lines = []
    for k, scene in enumerate(scenes):
        words = caption(scene).split()
        if k == blank:
            words[slot] = "blank"
        lines.append(f"{{image#{k + 1}}} {' '.join(words)} .")
    if attribute == "shape":
        choices = [s if scenes[blank].count == 1 else PLURALS[s] for s in SHAPES]
    else:
        choices = [word(attribute, v) for v in values]
    words = caption(scenes[blank]).split()
    return Item(
        context=" ".join(lines) + " fill in the blank .",
        scenes=tuple(scenes),
        response=words[slot],
        choices=tuple(choices),
        meta={"attribute": attribute, "blank_image": blank},
    )


def shape_facts(rng: np.random.Generator, split: str) -> Item:
    """Knowledge-grounded QA: a text knowledge base names the keeper of every shape (or
    colour); ask who keeps the objects of the image picked by its count (or size)."""
    key = _pick(rng, ("shape", "colour"))
    selector = _pick(rng, ("count", "size"))
    n_images = 3 if selector == "count" else 2
    keys = distinct_values(key, n_images, rng)
    selectors = distinct_values(selector, n_images, rng)
    scenes = tuple(
        make_scene(rng, **{key: k, selector: s}) for k, s in zip(keys, selectors, strict=True)
    )
    values = VALUES[key]
    names = [NONSENSE_WORDS[int(i)] for i in rng.choice(len(NONSENSE_WORDS), len(values), False)]
    keeper = {str(v): n for v, n in zip(values, names, strict=True)}
    kept = {str(v): PLURALS[str(v)] if key == "shape" else f"{v} objects" for v in values}
    facts = " ".join(f"{keeper[str(v)]} keeps {kept[str(v)]} ." for v in values)
    target = int(rng.integers(n_images))
    which = f"the image with {word(selector, selectors[target])} objects"
    shown = [keeper[str(k)] for k in keys]
    extra = [n for n in names if n not in shown]
    choices = [*shown, extra[int(rng.integers(len(extra)))]]
    choices = [choices[int(i)] for i in rng.permutation(len(choices))]
    return Item(
        context=f"facts : {facts} {_images(n_images)} who keeps the objects in {which} ?",
        scenes=scenes,
        response=keeper[str(keys[target])],
        choices=tuple(choices),
        meta={"key": key, "selector": selector, "target_image": target, "keepers": keeper},
    )


def digit_board(rng: np.random.Generator, split: str) -> Item:
    """Text-rich images QA: three images each marked with a handwritten digit (scikit-learn's
    digits; train and test use disjoint samples); ask an attribute of the image
    marked with one digit."""
    attribute = _pick(rng, ("colour", "shape", "count"))
    values = distinct_values(attribute, 3, rng)
    free = tuple(c for c in range(GRID * GRID) if c != DIGIT_CELL)
    scenes = tuple(make_scene(rng, free_cells=free, **{attribute: v}) for v in values)
    digits = [int(d) for d in rng.choice(10, size=3, replace=False)]
    parity = 0 if split == "train" else 1
    glyphs = []
    for d in digits:
        pool = digit_indices(d, parity)
        glyphs.append(int(pool[int(rng.integers(len(pool)))]))
    target = int(rng.integers(3))
    question = {
        "colour": "what colour are the objects in the image marked {d} ?",
        "shape": "what shape are the objects in the image marked {d} ?",
        "count": "how many objects are in the image marked {d} ?",
    }[attribute].format(d=digits[target])
    choices = [word(attribute, v) for v in values]
    choices = [choices[int(i)] for i in rng.permutation(3)]
    return Item(
        context=f"{_images(3)} {question}",
        scenes=scenes,
        response=word(attribute, values[target]),
        choices=tuple(choices),
        meta={"attribute": attribute, "digits": digits, "target_image": target},
        digits=tuple(glyphs),
    )


def same_count(rng: np.random.Generator, split: str) -> Item:
    """Multi-image reasoning: two scenes differing in shape, colour and size; do they show the
    same number of objects? (balanced)"""
    first = make_scene(rng)
    same = bool(rng.integers(2))
    count = first.count if same else _pick(rng, [c for c in VALUES["count"] if c != first.count])
    second = make_scene(rng, count=count)
    for attribute in ("shape", "colour", "size"):
        if second.attributes()[attribute] == first.attributes()[attribute]:
            second = edit(second, attribute, rng)
    return Item(
        context=f"{_images(2)} do the two images show the same number of objects ?",
        scenes=(first, second),
        response="same" if same else "different",
        choices=("same", "different"),
        meta={"counts": [first.count, second.count]},
    )


def same_places(rng: np.random.Generator, split: str) -> Item:
    """Multi-image reasoning: two photos of the same objects (same caption; fresh background
    and noise); are the objects in the same cells, or has one moved? (balanced)"""
    first = make_scene(rng)
    second = reshuffle(first, rng)
    same = bool(rng.integers(2))
    moved = None
    if same:
        second = replace(second, cells=first.cells)
    else:
        second, source, target = move_one(replace(second, cells=first.cells), rng)
        moved = {"from": source, "to": target}
    return Item(
        context=f"{_images(2)} are the objects in the same places in the two images ?",
        scenes=(first, second),
        response="same" if same else "different",
        choices=("same", "different"),
        meta={"move": moved},
    )


_PAIRS = (("count", "size"), ("count", "colour"), ("size", "colour"), ("size", "shape"))


def _describe(attributes: tuple[str, str], scene: Scene) -> str:
    words = [value_of(scene, a) for a in ("count", "size", "colour") if a in attributes]
    return " ".join([*words, PLURALS[scene.shape] if "shape" in attributes else "objects"])


def which_image(rng: np.random.Generator, split: str) -> Item:
    """Multi-image reasoning (image choice): four near-identical scenes; which one shows the
    named combination of two attributes? The others differ in one or both of them (a cycle of
    one-attribute steps: no candidate is the centre of the others)."""
    pair = _pick(rng, _PAIRS)
    truth = make_scene(rng)
    first = edit(truth, pair[0], rng)
    second = edit(truth, pair[1], rng)
    both = with_value(first, pair[1], second.attributes()[pair[1]], rng)
    candidates = [truth, first, second, both]
    order = [int(i) for i in rng.permutation(4)]
    answer = order.index(0)
    return Item(
        context=f"which image shows {_describe(pair, truth)} ?",
        scenes=tuple(candidates[i] for i in order),
        response=f"Image {LETTERS[answer]}",
        choices=_image_choices(1),
        meta={"attributes": list(pair), "answer_index": answer},
    )


DEMON_TASKS: dict[str, TaskGenerator] = {
    "ShapeChat": TaskGenerator("multi_modal_dialogue", OPEN_ENDED, shape_chat),
    "ShapeStory": TaskGenerator("visual_story_telling_list", OPEN_ENDED, shape_story),
    "SpotTheEdit": TaskGenerator("visual_relation_inference", OPEN_ENDED, spot_the_edit),
    "MovedObject": TaskGenerator("visual_relation_inference", OPEN_ENDED, moved_object),
    "MissingPanel": TaskGenerator("multi_modal_cloze", MULTI_CHOICE, missing_panel),
    "CaptionCloze": TaskGenerator("multi_modal_cloze", MULTI_CHOICE, caption_cloze),
    "ShapeFacts": TaskGenerator("knowledge_grounded_qa", MULTI_CHOICE, shape_facts),
    "DigitBoard": TaskGenerator("text_rich_images_qa", MULTI_CHOICE, digit_board),
    "SameCount": TaskGenerator("multi_image_reasoning", MULTI_CHOICE, same_count),
    "SamePlaces": TaskGenerator("multi_image_reasoning", MULTI_CHOICE, same_places),
    "WhichImage": TaskGenerator("multi_image_reasoning", MULTI_CHOICE, which_image),
}
"""Task name -> (DEMON category, question type, generator)."""

IMAGE_CHOICE_BUILTIN_TASKS: frozenset[str] = frozenset({"MissingPanel", "WhichImage"})
"""The built-in tasks scored by ``drum.demon.scorers.score_image_choice`` ("Image B"). The
reference routes image choice by task name, so these are registered with ``score_sample``'s
routing below (and recorded in every built-in root's card, ``image_choice_tasks``, which
``drum.builtin.demon.card.register_card_scoring`` registers from); they collide with no DEMON
task name."""

for _name in sorted(IMAGE_CHOICE_BUILTIN_TASKS):  # the kit's registration, on import
    register_image_choice_task(_name)

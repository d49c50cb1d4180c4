"""The question forms: answers follow the scenes, the held-out wordings never appear in the
synthetic forms, VPG-C's data edits only the small object, every word is in the vocabulary."""

from __future__ import annotations

import re

import numpy as np

from drum.builtin.blip2.model import build_tokenizer
from drum.builtin.blip2.questions import (
    CAPTION_ASK,
    DIALOGUE,
    FORMS,
    MATCH_ASK,
    SINGLE_ASK,
    WHICH_ASK,
    ScenePool,
    forms_in,
)
from drum.builtin.blip2.scenes import COLOURS


def _questions(form: str, n: int = 300, objects: tuple[str, ...] = ("small",), seed: int = 0):
    pool = ScenePool(seed, 200)
    rng = np.random.default_rng(seed)
    return pool, [FORMS[form].form(rng, pool, objects) for _ in range(n)]


def test_single_image_answers_are_the_scenes_attributes() -> None:
    for form, (obj, attribute) in {
        "big_colour": ("big", "colour"), "big_shape": ("big", "shape"),
        "small_colour": ("small", "colour"), "small_shape": ("small", "shape"),
    }.items():  # fmt: skip
        pool, questions = _questions(form)
        for q in questions:
            assert q.response == pool.scene(q.images[0]).value(obj, attribute)
            assert (
                f"{attribute} of the {obj}" in q.context or f"{attribute} is the {obj}" in q.context
            )
    pool, questions = _questions("caption")
    for q in questions:
        scene = pool.scene(q.images[0])
        assert q.response == f"{scene.big_colour} {scene.big_shape}"


def test_far_forms_answers() -> None:
    pool, questions = _questions("colour_match", 400)
    answers = [q.response for q in questions]
    assert 0.4 < answers.count("yes") / len(answers) < 0.6
    for q in questions:
        scene = pool.scene(q.images[0])
        assert (q.response == "yes") == (scene.small_colour == scene.big_colour)
    pool, questions = _questions("which_image")
    for q in questions:
        colour = re.search(rf"\b({'|'.join(COLOURS)})\b", q.context)[1]
        first, second = (pool.scene(k).small_colour for k in q.images)
        assert first != second and q.response == ("first" if first == colour else "second")
    pool, questions = _questions("dialogue")
    for q in questions:
        attribute = "colour" if "what colour" in q.context else "shape"
        assert q.response == pool.scene(q.images[0]).value("small", attribute)


def test_synthetic_pairs_are_twins_edited_in_one_attribute_of_the_small_object() -> None:
    for form in forms_in("synthetic"):
        pool, questions = _questions(form)
        for q in questions:
            first, second = (pool.scene(k) for k in q.images)
            index, obj, attribute = q.images[1]
            assert q.images[0] == (index, None, None) and obj == "small"
            assert attribute == q.meta["edited"] and q.meta["object"] == "small"
            assert first.edited(obj, attribute, second.value(obj, attribute)) == second
            assert first.value(obj, attribute) != second.value(obj, attribute)
            if form == "edit_attribute":
                assert q.response == attribute
            elif form == "edit_same":
                assert q.response == ("no" if q.meta["asked"] == attribute else "yes")
                assert f"same {q.meta['asked']}" in q.context or q.meta["asked"] in q.context
            elif form == "edit_value":
                scene = (first, second)[q.meta["image"]]
                assert q.response == scene.value("small", q.meta["asked"])
            else:  # edit_other: the big object, which the edit leaves alone
                assert q.meta["asked_object"] == "big" and "big object" in q.context
                assert q.response == first.value("big", q.meta["asked"])
                assert q.response == second.value("big", q.meta["asked"])


def test_no_held_out_wording_is_in_the_synthetic_data() -> None:
    held_out = [*CAPTION_ASK, *MATCH_ASK, DIALOGUE.split(" ?")[0]]
    held_out += [a.format(attr=t, obj=o) for a in SINGLE_ASK for t in ("colour", "shape")
                 for o in ("big", "small")]  # fmt: skip
    held_out += [w.split("{value}")[0] for w in WHICH_ASK]
    contexts = [q.context for form in forms_in("synthetic") for q in _questions(form, 500)[1]]
    for sentence in held_out:
        # Whole sentences: "what colour is the small object ?" must not end a synthetic one.
        assert not any(sentence in c for c in contexts), sentence


def test_every_word_is_in_the_vocabulary() -> None:
    tokenizer = build_tokenizer(256)
    unknown = tokenizer.unk_token_id
    for form in FORMS:
        for q in _questions(form, 50, ("big", "small"))[1]:
            text = re.sub(r"\{image#\d\}", "", q.context) + " " + q.response
            assert unknown not in tokenizer(text, add_special_tokens=False)["input_ids"], text

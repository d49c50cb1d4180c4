"""The built-in world: deterministic, complete, and built so that demonstrations matter."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from drum.builtin.world.generate import WorldConfig, load_world_card, make_world
from drum.builtin.world.language import (
    ANSWER_VALUES,
    NONSENSE_WORDS,
    QUESTION_TYPES,
    canonical_caption,
    sample_convention,
    vocabulary,
)
from drum.builtin.world.scene import Scene, render_scene
from drum.data.jsonl import read_examples

SMALL = WorldConfig(n_train=30, n_pool=20, n_val=8, n_test=8)


def _digest(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(directory)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def test_same_seed_same_bytes_other_seed_other_world(tmp_path: Path) -> None:
    a = make_world(tmp_path / "a", SMALL, progress=False)
    b = make_world(tmp_path / "b", SMALL, progress=False)
    c = make_world(tmp_path / "c", WorldConfig(**{**SMALL.__dict__, "seed": 1}), progress=False)
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)


def test_layout_and_counts(tiny_world: Path) -> None:
    card = load_world_card(tiny_world)
    assert len(read_examples(tiny_world / "train.jsonl")) == card["splits"]["train"]
    for task in ("vqa", "caption", "classification"):
        for split in ("pool", "val", "test"):
            examples = read_examples(tiny_world / task / f"{split}.jsonl")
            assert len(examples) == card["splits"][split]
            assert {e.task for e in examples} == {task}
    # The three tasks share the pool images.
    vqa = read_examples(tiny_world / "vqa" / "pool.jsonl")
    caption = read_examples(tiny_world / "caption" / "pool.jsonl")
    assert [e.images for e in vqa] == [e.images for e in caption]


def test_current_world_is_not_rebuilt(tmp_path: Path) -> None:
    world = make_world(tmp_path / "w", SMALL, progress=False)
    stamp = (world / "world.json").stat().st_mtime_ns
    make_world(tmp_path / "w", SMALL, progress=False)
    assert (world / "world.json").stat().st_mtime_ns == stamp


def test_interrupted_build_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import drum.builtin.world.generate as generate

    def explode(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(generate, "atomic_write_json", explode)
    with pytest.raises(KeyboardInterrupt):
        make_world(tmp_path / "w", SMALL, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_vqa_answers_are_revealed_only_by_same_question_and_value(tiny_world: Path) -> None:
    """Convention words are distinct per (question type, value): a demonstration shows a
    query's answer word exactly when it asks the same question type about the same value."""
    convention = load_world_card(tiny_world)["convention"]
    words = list(convention.vqa_words.values())
    assert len(set(words)) == len(words) == sum(len(ANSWER_VALUES[q]) for q in QUESTION_TYPES)
    pool = read_examples(tiny_world / "vqa" / "pool.jsonl")
    for example in pool:
        key = f"{example.meta['question_type']}={example.meta[example.meta['question_type']]}"
        assert example.answer == convention.vqa_words[key]
        assert len(example.answers) == 10
        assert example.answers.count(example.answer) >= 5  # gold is the majority answer
    for a in pool:
        for b in pool:
            same_key = (a.meta["question_type"], a.meta[a.meta["question_type"]]) == (
                b.meta["question_type"],
                b.meta[b.meta["question_type"]],
            )
            assert (a.answer == b.answer) == same_key


def test_questions_never_name_their_answer(tiny_world: Path) -> None:
    for example in read_examples(tiny_world / "vqa" / "pool.jsonl"):
        asked = str(example.meta[example.meta["question_type"]])
        assert asked not in example.text.split()


def test_caption_references_follow_the_convention(tiny_world: Path) -> None:
    convention = load_world_card(tiny_world)["convention"]
    for example in read_examples(tiny_world / "caption" / "pool.jsonl"):
        full = example.answers[0].split()
        assert convention.caption_words[example.meta["colour"]] in full
        assert convention.caption_words[example.meta["shape"]] in full
        assert len(example.answers) == 5


def test_classification_labels_name_the_class_attribute(tiny_world: Path) -> None:
    convention = load_world_card(tiny_world)["convention"]
    for example in read_examples(tiny_world / "classification" / "pool.jsonl"):
        assert example.answer == convention.class_words[example.meta["shape"]]
        assert example.meta["label"] == example.meta["shape"]


def test_conventions_differ_between_seeds_and_use_known_words() -> None:
    a = sample_convention(np.random.default_rng(0))
    b = sample_convention(np.random.default_rng(1))
    assert a.vqa_words != b.vqa_words
    assert set(a.vqa_words.values()) <= set(NONSENSE_WORDS) <= set(vocabulary())


def test_render_is_deterministic_and_draws_the_objects() -> None:
    scene = Scene("square", "red", "large", 2, (0, 8), background=40, noise_seed=3)
    pixels = render_scene(scene, noise_std=0.0)
    assert pixels.shape == (32, 32, 3) and pixels.dtype == np.uint8
    np.testing.assert_array_equal(pixels, render_scene(scene, noise_std=0.0))
    red = (pixels[..., 0] > 150) & (pixels[..., 1] < 80)
    assert red[:11, :11].sum() > 20 and red[-11:, -11:].sum() > 20  # cells 0 and 8
    assert red[11:21, 11:21].sum() == 0  # the centre cell is empty
    small = render_scene(Scene("square", "red", "small", 2, (0, 8), 40, 3), noise_std=0.0)
    assert ((small[..., 0] > 150) & (small[..., 1] < 80)).sum() < red.sum()


def test_canonical_caption() -> None:
    assert canonical_caption(Scene("cross", "blue", "small", 3, (0, 1, 2), 0, 0)) == (
        "three small blue crosses"
    )
    assert (
        canonical_caption(Scene("circle", "red", "large", 1, (4,), 0, 0)) == "one large red circle"
    )


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="n_pool"):
        WorldConfig(n_pool=0)
    with pytest.raises(ValueError, match="class_attribute"):
        WorldConfig(class_attribute="weight")


def test_plain_convention_answers_in_english() -> None:
    from drum.builtin.world.language import plain_convention

    scene = Scene("cross", "blue", "small", 3, (0, 1, 2), 0, 0)
    plain = plain_convention()
    assert plain.vqa_answer(scene, "colour") == "blue"
    assert plain.vqa_answer(scene, "count") == "three"
    assert plain.caption(scene) == "three small blue cross"
    assert plain.class_label(scene) == "cross"
    assert set(plain.vqa_words.values()) <= set(vocabulary())

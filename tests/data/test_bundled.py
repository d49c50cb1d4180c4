"""Tests for the datasets built from images bundled inside scikit-learn and scikit-image."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from drum.data.bundled import (
    BUNDLED_PHOTOS,
    DIGIT_WORDS,
    DIGITS_PROMPT,
    PHOTOS_PROMPT,
    SPLITS,
    make_digits_dataset,
    make_photos_dataset,
)
from drum.data.jsonl import read_examples

N_DIGITS = 1797


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_digits_dataset(tmp_path_factory.mktemp("digits"), seed=0)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_photos_dataset(tmp_path_factory.mktemp("photos"))


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


# --------------------------------------------------------------------------------- digits


def test_digits_returns_every_split(digits: dict[str, Path]) -> None:
    assert set(digits) == set(SPLITS)
    for name, path in digits.items():
        assert path.name == f"{name}.jsonl"
        assert path.is_file()


def test_digits_round_trip_through_reader(digits: dict[str, Path]) -> None:
    for path in digits.values():
        examples = read_examples(path)  # verifies every image too
        assert examples
        for example in examples:
            assert example.task == "classification"
            assert example.text == DIGITS_PROMPT
            assert example.answers == (DIGIT_WORDS[example.meta["label"]],)
            assert example.meta["source"] == "sklearn.load_digits"
            assert example.images[0].is_absolute()
            assert example.images[0].is_file()


def test_digits_splits_are_disjoint_and_cover_everything(digits: dict[str, Path]) -> None:
    indices = {
        name: [e.meta["index"] for e in read_examples(p, False)] for name, p in digits.items()
    }
    ids = {name: {e.id for e in read_examples(p, False)} for name, p in digits.items()}
    all_indices = [i for part in indices.values() for i in part]
    assert len(all_indices) == len(set(all_indices)) == N_DIGITS
    assert set(all_indices) == set(range(N_DIGITS))
    assert not ids["pool"] & ids["val"]
    assert not ids["pool"] & ids["test"]
    assert not ids["val"] & ids["test"]


def test_digits_split_sizes_and_stratification(digits: dict[str, Path]) -> None:
    from sklearn.datasets import load_digits

    overall = Counter(int(t) for t in load_digits().target)
    expected_share = {"pool": 0.6, "val": 0.2, "test": 0.2}
    for name, path in digits.items():
        labels = Counter(e.meta["label"] for e in read_examples(path, False))
        size = sum(labels.values())
        assert abs(size - expected_share[name] * N_DIGITS) <= 10
        assert set(labels) == set(range(10))
        for label, count in overall.items():
            # per-class rounding: each class within one example of its exact share
            assert abs(labels[label] - expected_share[name] * count) <= 1


def test_digits_images_are_upscaled_rgb(digits: dict[str, Path]) -> None:
    example = read_examples(digits["test"])[0]
    with Image.open(example.image) as image:
        assert image.mode == "RGB"
        assert image.size == (32, 32)
        pixels = np.asarray(image)
    # nearest-neighbour upscaling: every 4x4 block is one flat colour, and the channels agree
    blocks = pixels.reshape(8, 4, 8, 4, 3)
    assert (blocks == blocks[:, :1, :, :1, :]).all()
    assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()
    assert pixels.max() <= 255 and pixels.max() > 200  # 16 maps to 255, digits have ink


def test_digits_pixels_match_sklearn(digits: dict[str, Path]) -> None:
    from sklearn.datasets import load_digits

    source = load_digits().images
    for example in read_examples(digits["val"])[:20]:
        with Image.open(example.image) as image:
            small = np.asarray(image)[::4, ::4, 0].astype(np.float64)
        np.testing.assert_allclose(small / 255.0 * 16.0, source[example.meta["index"]], atol=0.05)


def test_digits_card(digits: dict[str, Path]) -> None:
    card = json.loads((digits["pool"].parent / "dataset.json").read_text(encoding="utf-8"))
    assert card["seed"] == 0
    assert card["total"] == N_DIGITS
    assert card["counts"] == {
        name: len(read_examples(path, False)) for name, path in digits.items()
    }
    assert "license" in card and "source" in card and "name" in card


def test_digits_deterministic_and_idempotent(tmp_path: Path, digits: dict[str, Path]) -> None:
    first = _tree_bytes(digits["pool"].parent)
    again = make_digits_dataset(tmp_path / "again", seed=0)
    assert _tree_bytes(again["pool"].parent) == first
    # re-running in place changes nothing and leaves no temporary files behind
    make_digits_dataset(tmp_path / "again", seed=0)
    assert _tree_bytes(tmp_path / "again") == first


def _copy_of(digits: dict[str, Path], tmp_path: Path) -> Path:
    # Re-making in a copy reuses the identical images (no fsync per image), which keeps these
    # tests fast; only the JSONL files and the card change.
    copy = tmp_path / "copy"
    shutil.copytree(digits["pool"].parent, copy)
    return copy


def test_digits_seed_changes_split(tmp_path: Path, digits: dict[str, Path]) -> None:
    other = make_digits_dataset(_copy_of(digits, tmp_path), seed=1)
    assert other["test"].read_bytes() != digits["test"].read_bytes()
    indices = [e.meta["index"] for p in other.values() for e in read_examples(p, False)]
    assert sorted(indices) == list(range(N_DIGITS))
    card = json.loads((other["pool"].parent / "dataset.json").read_text(encoding="utf-8"))
    assert card["seed"] == 1


def test_digits_custom_fractions(tmp_path: Path, digits: dict[str, Path]) -> None:
    paths = make_digits_dataset(_copy_of(digits, tmp_path), seed=3, fractions=(0.8, 0.0, 0.2))
    assert read_examples(paths["val"], False) == []
    sizes = {name: len(read_examples(path, False)) for name, path in paths.items()}
    assert sum(sizes.values()) == N_DIGITS
    assert abs(sizes["test"] - 0.2 * N_DIGITS) <= 10


@pytest.mark.parametrize("fractions", [(0.5, 0.2, 0.2), (0.0, 0.5, 0.5), (1.2, -0.1, -0.1), (1.0,)])
def test_digits_rejects_bad_fractions(tmp_path: Path, fractions: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="fractions"):
        make_digits_dataset(tmp_path, fractions=fractions)


# --------------------------------------------------------------------------------- photos


def test_photos_round_trip(photos: Path) -> None:
    examples = read_examples(photos)
    assert len(examples) >= 10
    assert len({e.id for e in examples}) == len(examples)
    for example in examples:
        assert example.task == "caption"
        assert example.text == PHOTOS_PROMPT
        assert 3 <= len(example.answers) <= 5
        assert all(answer.strip() for answer in example.answers)
        assert example.meta["source"].startswith("skimage.data.")


def test_photos_are_real_size_rgb(photos: Path) -> None:
    examples = {e.id: e for e in read_examples(photos)}
    assert "astronaut" in examples
    for example in examples.values():
        with Image.open(example.image) as image:
            assert image.mode == "RGB"
            assert list(image.size) == example.meta["size"]
            assert min(image.size) >= 100
    assert examples["astronaut"].meta["size"] == [512, 512]
    if "cat" in examples:
        assert examples["cat"].meta["size"] == [451, 300]  # (width, height)


def test_photos_match_skimage_pixels(photos: Path) -> None:
    import skimage.data

    astronaut = next(e for e in read_examples(photos) if e.id == "astronaut")
    with Image.open(astronaut.image) as image:
        np.testing.assert_array_equal(np.asarray(image), skimage.data.astronaut())


def test_photos_card_and_listing(photos: Path) -> None:
    card = json.loads((photos.parent / "dataset.json").read_text(encoding="utf-8"))
    loaded = {e.id for e in read_examples(photos, False)}
    assert card["counts"]["photos"] == len(loaded)
    assert len(loaded) + len(card["unavailable"]) == len(BUNDLED_PHOTOS)


def test_photos_deterministic(tmp_path: Path, photos: Path) -> None:
    make_photos_dataset(tmp_path)
    assert _tree_bytes(tmp_path) == _tree_bytes(photos.parent)


def test_real_photo_through_clip_processor(photos: Path) -> None:
    from transformers import CLIPImageProcessorPil

    processor = CLIPImageProcessorPil(
        size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}
    )
    example = next(e for e in read_examples(photos) if e.id == "astronaut")
    with Image.open(example.image) as image:
        pixel_values = processor(images=image.convert("RGB"), return_tensors="pt")["pixel_values"]
    assert tuple(pixel_values.shape) == (1, 3, 224, 224)
    values = pixel_values.numpy()
    assert np.isfinite(values).all()
    assert values.std() > 0.1  # a real photo, not a constant image

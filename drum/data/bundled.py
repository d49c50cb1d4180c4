"""Real images that ship inside installed packages, turned into JSONL datasets without a network.

Two sources are used, both present on disk as soon as the pinned dependencies are installed:

* scikit-learn's ``load_digits()``: 1797 8x8 handwritten digits (the UCI "optical recognition of
  handwritten digits" test set) -> a stratified pool / val / test classification dataset.
* scikit-image's bundled sample photos (``skimage.data.astronaut()`` and friends) -> one caption
  dataset of real-size photos with hand-written reference captions, for tests and examples that
  need genuine photographs going through genuine image processors.

Every writer is atomic and deterministic (the same arguments give byte-identical files), so
calling a maker twice on the same directory is harmless.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from drum.data.example import Example
from drum.data.jsonl import write_examples
from drum.utils.io import atomic_write_bytes, atomic_write_json

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DIGITS_PROMPT = "what digit is this?"
PHOTOS_PROMPT = "describe the image."
SPLITS = ("pool", "val", "test")


# ---------------------------------------------------------------------------------------------
# shared helpers


def _png_bytes(pixels: np.ndarray) -> bytes:
    """PNG bytes of an RGB uint8 array; Pillow writes no timestamp, so equal pixels, equal bytes."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _write_if_changed(path: Path, data: bytes) -> None:
    """Atomically write ``data`` unless ``path`` already holds exactly it.

    Skipping identical files keeps a re-run cheap (no fsync per image) and leaves mtimes alone.
    """
    try:
        if path.read_bytes() == data:
            return
    except FileNotFoundError:
        pass
    atomic_write_bytes(path, data)


def _to_rgb_uint8(array: np.ndarray) -> np.ndarray:
    """Grey, boolean, float or RGBA sample data -> an ``(H, W, 3)`` uint8 array."""
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    elif array.dtype.kind == "f":
        # skimage float images live in [0, 1]
        array = np.round(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)
    elif array.dtype != np.uint8:
        raise ValueError(f"unsupported image dtype {array.dtype}")
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    elif array.ndim == 3 and array.shape[2] == 4:
        array = array[..., :3]
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"unsupported image shape {array.shape}")
    return np.ascontiguousarray(array)


# ---------------------------------------------------------------------------------------------
# digits (scikit-learn)


def _stratified_split(
    labels: np.ndarray, fractions: Sequence[float], seed: int
) -> dict[str, list[int]]:
    """Indices per split, each class divided in the given proportions (per-class rounding).

    Hand-rolled rather than ``train_test_split`` so that a zero fraction is allowed and the
    result depends only on numpy's seeded generator.
    """
    rng = np.random.default_rng(seed)
    parts: dict[str, list[int]] = {name: [] for name in SPLITS}
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        members = members[rng.permutation(len(members))]
        n_val = int(round(len(members) * fractions[1]))
        n_test = int(round(len(members) * fractions[2]))
        n_pool = len(members) - n_val - n_test
        parts["pool"].extend(members[:n_pool].tolist())
        parts["val"].extend(members[n_pool : n_pool + n_val].tolist())
        parts["test"].extend(members[n_pool + n_val :].tolist())
    return {name: sorted(indices) for name, indices in parts.items()}


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    if len(fractions) != 3:
        raise ValueError(f"fractions must be (pool, val, test), got {tuple(fractions)!r}")
    pool, val, test = (float(value) for value in fractions)
    if min(pool, val, test) < 0 or pool <= 0:
        raise ValueError(f"fractions must be >= 0 with a positive pool, got {tuple(fractions)!r}")
    if not math.isclose(pool + val + test, 1.0, abs_tol=1e-6):
        raise ValueError(f"fractions must sum to 1, got {tuple(fractions)!r}")
    return pool, val, test


def make_digits_dataset(
    out_dir: str | Path,
    seed: int = 0,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    upscale: int = 4,
) -> dict[str, Path]:
    """Write scikit-learn's 1797 handwritten digits as a pool / val / test classification set.

    Layout under ``out_dir``: ``images/digit_NNNNN.png`` (RGB, ``8 * upscale`` pixels square,
    nearest-neighbour upscaled), ``pool.jsonl``, ``val.jsonl``, ``test.jsonl`` and a
    ``dataset.json`` card. Each example asks ``DIGITS_PROMPT`` and is answered by the digit as an
    English word. The split is stratified by label and fixed by ``seed``.

    Returns:
        split name -> path of its JSONL file.
    """
    from sklearn.datasets import load_digits  # heavy import; only this maker needs it

    if upscale < 1:
        raise ValueError(f"upscale must be >= 1, got {upscale}")
    fractions = _check_fractions(fractions)
    out_dir = Path(out_dir)
    image_dir = out_dir / "images"

    digits = load_digits()
    # The bundled values are integer counts 0..16 stored as floats.
    grey = np.round(np.asarray(digits.images, dtype=np.float64) * (255.0 / 16.0))
    grey = np.clip(grey, 0, 255).astype(np.uint8)
    labels = np.asarray(digits.target, dtype=np.int64)

    examples: list[Example] = []
    for index, (pixels, label) in enumerate(zip(grey, labels, strict=True)):
        big = np.repeat(np.repeat(pixels, upscale, axis=0), upscale, axis=1)
        image_path = image_dir / f"digit_{index:05d}.png"
        _write_if_changed(image_path, _png_bytes(_to_rgb_uint8(big)))
        examples.append(
            Example(
                id=f"digits-{index:05d}",
                images=(image_path.resolve(),),
                text=DIGITS_PROMPT,
                answers=(DIGIT_WORDS[int(label)],),
                task="classification",
                meta={"label": int(label), "source": "sklearn.load_digits", "index": index},
            )
        )

    split_indices = _stratified_split(labels, fractions, seed)
    paths: dict[str, Path] = {}
    counts: dict[str, int] = {}
    for name in SPLITS:
        paths[name] = out_dir / f"{name}.jsonl"
        counts[name] = write_examples(paths[name], (examples[i] for i in split_indices[name]))

    atomic_write_json(
        out_dir / "dataset.json",
        {
            "name": "digits",
            "source": "sklearn.datasets.load_digits",
            "description": (
                "UCI ML optical recognition of handwritten digits (test set), 8x8 greyscale "
                "with values 0..16, as shipped inside scikit-learn"
            ),
            "license": (
                "UCI ML Repository dataset (Alpaydin & Kaynak, 1998), CC BY 4.0; "
                "redistributed with scikit-learn (BSD-3-Clause)"
            ),
            "task": "classification",
            "prompt": DIGITS_PROMPT,
            "image_size": [8 * upscale, 8 * upscale],
            "upscale": upscale,
            "seed": seed,
            "fractions": list(fractions),
            "counts": counts,
            "total": len(examples),
        },
    )
    return paths


# ---------------------------------------------------------------------------------------------
# photos (scikit-image)


@dataclass(frozen=True)
class BundledPhoto:
    """One scikit-image sample photo and the captions that describe it."""

    id: str
    loader: str  # name of the ``skimage.data`` function
    captions: tuple[str, ...]
    pick: Callable[[Any], np.ndarray] | None = None  # for loaders that return more than an image


# Captions written by looking at each image; the first one is the canonical answer.
# Only images stored inside the scikit-image wheel are listed: the others need ``pooch`` and a
# download, which must never be attempted here.
BUNDLED_PHOTOS: tuple[BundledPhoto, ...] = (
    BundledPhoto(
        "astronaut",
        "astronaut",
        (
            "a smiling woman astronaut in an orange spacesuit",
            "a portrait of a female astronaut in an orange flight suit next to an american flag",
            "an astronaut posing with a helmet in front of her and a model space shuttle behind",
            "a woman with short hair wearing an orange space suit",
        ),
    ),
    BundledPhoto(
        "camera",
        "camera",
        (
            "a black and white photo of a man looking through a camera on a tripod",
            "a man in a dark coat filming with a camera on a tripod on a lawn",
            "a photographer using a tripod-mounted camera in a grassy field",
            "a grayscale photo of a cameraman with buildings in the background",
        ),
    ),
    BundledPhoto(
        "cat",
        "cat",
        (
            "a close-up of a tabby cat's face",
            "a brown striped cat with green eyes",
            "the face of a tabby cat looking to the side",
            "a close-up photo of a cat with a pink nose and long whiskers",
        ),
    ),
    BundledPhoto(
        "coffee",
        "coffee",
        (
            "a cup of espresso on a red saucer",
            "a red and white coffee cup with a spoon on a wooden table",
            "an espresso in a small cup on a saucer with a metal spoon",
            "a cup of coffee on a wooden table seen from above",
        ),
    ),
    BundledPhoto(
        "rocket",
        "rocket",
        (
            "a rocket standing on a launch pad at dusk",
            "a white rocket between lattice launch towers under a dark blue sky",
            "a rocket on the launch pad with bright lights glowing at its base",
            "a tall white rocket ready for launch at twilight",
        ),
    ),
    BundledPhoto(
        "horse",
        "horse",
        (
            "a black silhouette of a horse on a white background",
            "the silhouette of a standing horse facing right",
            "a black and white image of a horse shape",
        ),
    ),
    BundledPhoto(
        "coins",
        "coins",
        (
            "a grayscale photo of ancient coins arranged in rows",
            "four rows of old coins on a dark background",
            "a collection of ancient greek coins showing heads and figures",
            "a black and white photo of twenty-four old coins",
        ),
    ),
    BundledPhoto(
        "immunohistochemistry",
        "immunohistochemistry",
        (
            "a microscope image of tissue stained brown and blue",
            "a stained tissue section seen under a microscope",
            "cells with brown stained membranes and blue nuclei",
            "a histology slide showing brown stained glands surrounded by blue cells",
        ),
    ),
    BundledPhoto(
        "moon",
        "moon",
        (
            "a grayscale image of the surface of the moon",
            "a close-up of the gray lunar surface with small craters",
            "a black and white photo of a cratered moon surface",
        ),
    ),
    BundledPhoto(
        "page",
        "page",
        (
            "a photo of a page of printed text",
            "a page with the heading region-based segmentation",
            "a grayscale image of a book page about segmentation with a line of code",
        ),
    ),
    BundledPhoto(
        "text",
        "text",
        (
            "handwritten math equations on a sheet of paper",
            "a close-up of handwritten formulas photographed at an angle",
            "a grayscale photo of handwriting on paper",
        ),
    ),
    BundledPhoto(
        "clock",
        "clock",
        (
            "a motion-blurred photo of a round clock on a gray wall",
            "a blurry grayscale image of a clock",
            "a clock blurred by motion against a plain background",
        ),
    ),
    BundledPhoto(
        "hubble_deep_field",
        "hubble_deep_field",
        (
            "a deep field image of many galaxies in space",
            "hundreds of colorful galaxies against a black sky",
            "a telescope view of distant galaxies and a few stars",
            "a space photo full of small red, white and blue galaxies",
        ),
    ),
    BundledPhoto(
        "retina",
        "retina",
        (
            "a photo of the back of a human eye showing blood vessels",
            "a fundus image of a retina with branching red blood vessels",
            "an orange-red retina with a bright optic disc on the left",
            "a medical photograph of a human retina on a black background",
        ),
    ),
    BundledPhoto(
        "brick",
        "brick",
        (
            "a grayscale photo of a brick wall",
            "rows of rectangular bricks seen at an angle",
            "a close-up texture of gray bricks and mortar",
        ),
    ),
    BundledPhoto(
        "grass",
        "grass",
        (
            "a grayscale close-up of grass",
            "a texture of grass blades and small leaves",
            "a black and white photo of a lawn seen from above",
        ),
    ),
    BundledPhoto(
        "gravel",
        "gravel",
        (
            "a grayscale close-up of gravel",
            "a layer of small sharp stones",
            "a texture of crushed rock seen from above",
        ),
    ),
    BundledPhoto(
        "motorcycle",
        "stereo_motorcycle",
        (
            "a red motorcycle parked in a garage",
            "a red motorbike with a black seat on a concrete floor",
            "a motorcycle in front of shelves full of boxes",
            "a red motorcycle parked indoors next to a wooden bench",
        ),
        pick=lambda triple: triple[0],  # (left view, right view, disparity)
    ),
)


def load_bundled_photo(photo: BundledPhoto) -> np.ndarray | None:
    """The photo as an RGB uint8 array, or ``None`` when this installation cannot load it offline.

    A missing file surfaces as ``ModuleNotFoundError`` (pooch absent) or ``OSError`` /
    ``ValueError`` (pooch present but the download fails); all of them mean "not available here".
    """
    import skimage.data  # heavy import; only the photo maker needs it

    loader = getattr(skimage.data, photo.loader, None)
    if loader is None:
        return None
    try:
        loaded = loader()
    except (ImportError, OSError, ValueError):
        return None
    return _to_rgb_uint8(np.asarray(photo.pick(loaded) if photo.pick else loaded))


def make_photos_dataset(out_dir: str | Path) -> Path:
    """Write the scikit-image sample photos as a caption dataset; returns ``photos.jsonl``.

    Layout under ``out_dir``: ``images/<id>.png`` (RGB, native size), ``photos.jsonl`` and a
    ``dataset.json`` card listing which photos were unavailable (if any).
    """
    out_dir = Path(out_dir)
    image_dir = out_dir / "images"
    examples: list[Example] = []
    unavailable: list[str] = []
    for photo in BUNDLED_PHOTOS:
        pixels = load_bundled_photo(photo)
        if pixels is None:
            unavailable.append(photo.loader)
            continue
        height, width = pixels.shape[:2]
        image_path = image_dir / f"{photo.id}.png"
        _write_if_changed(image_path, _png_bytes(pixels))
        examples.append(
            Example(
                id=photo.id,
                images=(image_path.resolve(),),
                text=PHOTOS_PROMPT,
                answers=photo.captions,
                task="caption",
                meta={"source": f"skimage.data.{photo.loader}", "size": [width, height]},
            )
        )
    if not examples:
        raise RuntimeError("no scikit-image sample photo could be loaded offline")

    jsonl_path = out_dir / "photos.jsonl"
    count = write_examples(jsonl_path, examples)
    atomic_write_json(
        out_dir / "dataset.json",
        {
            "name": "photos",
            "source": "skimage.data",
            "description": "scikit-image sample photos at native size with hand-written captions",
            "license": (
                "scikit-image sample data; per-image terms are in each skimage.data.<name> "
                "docstring (most are public domain or CC0)"
            ),
            "task": "caption",
            "prompt": PHOTOS_PROMPT,
            "counts": {"photos": count},
            "unavailable": unavailable,
        },
    )
    return jsonl_path

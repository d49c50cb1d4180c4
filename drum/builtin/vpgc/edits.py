"""The photos VPG-C's real-size synthetic data is cut from, and the edits made to them.

Photos: scikit-image's bundled ``skimage.data`` photos available offline (``PHOTO_FILES``,
``available_photos``, ``load_photo``). Scenes: a random square crop of one photo, resized
to the base's image size (``PhotoScene``, ``draw_scene``). Edits (``EDIT_KINDS``): a patch
pasted from another photo, recoloured (hue shifted, saturation raised) or blurred, inside one
block of the vision tower's patches, every pixel outside it unchanged (``edit_region``,
``visible_edit``). ``drum.builtin.vpgc.photos`` builds the tasks from them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

PHOTO_FILES: dict[str, str] = {
    "astronaut": "astronaut.png",
    "brick": "brick.png",
    "camera": "camera.png",
    "chelsea": "chelsea.png",
    "coffee": "coffee.png",
    "coins": "coins.png",
    "grass": "grass.png",
    "gravel": "gravel.png",
    "hubble_deep_field": "hubble_deep_field.jpg",
    "immunohistochemistry": "ihc.png",
    "moon": "moon.png",
    "page": "page.png",
    "retina": "retina.jpg",
    "rocket": "rocket.jpg",
    "text": "text.png",
}
"""``skimage.data`` loader -> the file it reads (``cat`` is ``chelsea``; synthetic images such
as ``checkerboard``, ``colorwheel`` or ``horse``'s silhouette are left out)."""

EDIT_KINDS = ("pasted", "recoloured", "blurred")


def available_photos() -> tuple[str, ...]:
    """The ``PHOTO_FILES`` photos the installed scikit-image holds on disk (loading them never
    downloads), in ``PHOTO_FILES`` order."""
    import skimage.data

    folder = Path(skimage.data.__file__).parent
    return tuple(
        name
        for name, file in PHOTO_FILES.items()
        if hasattr(skimage.data, name) and (folder / file).is_file()
    )


@cache
def _photo(name: str) -> np.ndarray:
    import skimage.data

    pixels = np.asarray(getattr(skimage.data, name)())
    if pixels.ndim == 2:
        pixels = np.stack([pixels] * 3, axis=-1)
    pixels = pixels[..., :3]
    if pixels.dtype != np.uint8:
        raise ValueError(f"skimage.data.{name}() is {pixels.dtype}, expected uint8")
    pixels = np.ascontiguousarray(pixels)
    pixels.setflags(write=False)
    return pixels


def load_photo(name: str) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB of ``skimage.data.<name>()`` (grey stacked, alpha dropped;
    read-only, cached)."""
    if name not in PHOTO_FILES:
        raise ValueError(f"unknown photo {name!r}; known: {', '.join(PHOTO_FILES)}")
    return _photo(name)


def crop_resize(
    photo: np.ndarray, top: int, left: int, side: int, size: int, flip: bool = False
) -> np.ndarray:
    """The ``side``-pixel square of ``photo`` at ``(top, left)``, mirrored if ``flip``, resized
    to ``size`` (bicubic)."""
    crop = photo[top : top + side, left : left + side]
    if flip:
        crop = crop[:, ::-1]
    image = Image.fromarray(np.ascontiguousarray(crop)).resize((size, size), Image.BICUBIC)
    return np.asarray(image, dtype=np.uint8).copy()


def _random_crop(
    rng: np.random.Generator, photo: np.ndarray, min_share: float
) -> tuple[int, int, int]:
    height, width = photo.shape[:2]
    short = min(height, width)
    side = int(rng.integers(max(1, int(min_share * short)), short + 1))
    top = int(rng.integers(height - side + 1))
    left = int(rng.integers(width - side + 1))
    return top, left, side


@dataclass(frozen=True)
class PhotoScene:
    """A scene: the square ``side`` crop of ``photo`` at ``(top, left)``, mirrored or not."""

    photo: str
    top: int
    left: int
    side: int
    flip: bool

    def render(self, size: int) -> np.ndarray:
        return crop_resize(load_photo(self.photo), self.top, self.left, self.side, size, self.flip)


def draw_scene(rng: np.random.Generator, photos: Sequence[str], min_crop: float) -> PhotoScene:
    photo = photos[int(rng.integers(len(photos)))]
    top, left, side = _random_crop(rng, load_photo(photo), min_crop)
    return PhotoScene(photo, top, left, side, bool(rng.integers(2)))


def recolour(patch: np.ndarray, shift: float, min_saturation: int = 115) -> np.ndarray:
    """``patch`` (uint8 RGB) with its hue rotated by ``shift`` turns and its saturation raised
    to at least ``min_saturation`` / 255 (so grey patches take a colour too), in PIL's HSV."""
    hsv = np.asarray(Image.fromarray(np.ascontiguousarray(patch)).convert("HSV")).astype(np.int32)
    hsv[..., 0] = (hsv[..., 0] + int(round(shift * 256))) % 256
    hsv[..., 1] = np.maximum(hsv[..., 1], min_saturation)
    return np.asarray(Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB"), dtype=np.uint8)


def blur(pixels: np.ndarray, sigma: float) -> np.ndarray:
    """``pixels`` (uint8 RGB) Gaussian-blurred by ``sigma`` pixels in both image directions
    (``scipy.ndimage.gaussian_filter``, reflected borders)."""
    out = gaussian_filter(pixels.astype(np.float64), sigma=(sigma, sigma, 0), mode="reflect")
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def edit_region(
    pixels: np.ndarray,
    kind: str,
    box: tuple[slice, slice],
    rng: np.random.Generator,
    scene: PhotoScene,
    photos: Sequence[str],
) -> tuple[np.ndarray, dict[str, Any]]:
    """A copy of ``pixels`` edited by ``kind`` inside ``box`` only (module docstring), and what
    the edit drew."""
    rows, cols = box
    side = rows.stop - rows.start
    size = pixels.shape[0]
    out = pixels.copy()
    if kind == "pasted":
        others = [p for p in photos if p != scene.photo]
        corners = [
            (r, c)
            for r in range(0, size - side + 1, side)
            for c in range(0, size - side + 1, side)
            if abs(r - rows.start) >= side or abs(c - cols.start) >= side
        ]
        if corners and rng.integers(2):  # another place of the same scene
            top, left = corners[int(rng.integers(len(corners)))]
            out[rows, cols] = pixels[top : top + side, left : left + side]
            return out, {"from": "scene", "top": top, "left": left}
        photo = others[int(rng.integers(len(others)))]
        source = load_photo(photo)
        short = min(source.shape[:2])
        crop_side = int(rng.integers(max(1, short // 8), max(2, short // 2) + 1))
        top = int(rng.integers(source.shape[0] - crop_side + 1))
        left = int(rng.integers(source.shape[1] - crop_side + 1))
        out[rows, cols] = crop_resize(source, top, left, crop_side, side)
        return out, {"from": photo, "top": top, "left": left, "side": crop_side}
    if kind == "recoloured":
        shift = float(rng.uniform(0.25, 0.75))
        out[rows, cols] = recolour(pixels[rows, cols], shift)
        return out, {"hue_shift": round(shift, 6)}
    if kind == "blurred":
        sigma = max(1.0, side / 8)
        margin = int(np.ceil(4 * sigma))
        r0, c0 = max(0, rows.start - margin), max(0, cols.start - margin)
        window = blur(pixels[r0 : rows.stop + margin, c0 : cols.stop + margin], sigma)
        out[rows, cols] = window[rows.start - r0 : rows.stop - r0, cols.start - c0 : cols.stop - c0]
        return out, {"sigma": sigma}
    raise ValueError(f"unknown edit kind {kind!r}; expected one of {EDIT_KINDS}")


def change(a: np.ndarray, b: np.ndarray, box: tuple[slice, slice]) -> float:
    """Mean absolute difference of ``a`` and ``b`` inside ``box`` (grey levels)."""
    return float(np.abs(a[box].astype(np.int16) - b[box].astype(np.int16)).mean())


def visible_edit(
    pixels: np.ndarray,
    kinds: Sequence[str],
    box: tuple[slice, slice],
    rng: np.random.Generator,
    scene: PhotoScene,
    photos: Sequence[str],
    min_change: float,
    attempts: int = 4,
) -> tuple[str, np.ndarray, dict[str, Any]]:
    """The first of ``kinds`` whose edit (up to ``attempts`` draws each) changes ``box`` by at
    least ``min_change``; when none does, the most visible draw."""
    best: tuple[float, str, np.ndarray, dict[str, Any]] | None = None
    for kind in kinds:
        for _ in range(attempts if kind != "blurred" else 1):
            edited, detail = edit_region(pixels, kind, box, rng, scene, photos)
            amount = change(pixels, edited, box)
            if amount >= min_change:
                return kind, edited, {**detail, "change": round(amount, 3)}
            if best is None or amount > best[0]:
                best = (amount, kind, edited, detail)
    assert best is not None
    amount, kind, edited, detail = best
    return kind, edited, {**detail, "change": round(amount, 3)}

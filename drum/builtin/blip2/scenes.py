"""Two-object scenes: one big object in the centre, one small object in a corner.

The big object is what a caption names (the primary content); the small one is the detail a
caption-trained Q-Former can leave out. Colour and shape of each are independent and uniform;
the small object's corner, the sizes' jitter, the background and the pixel noise are
nuisances. The small object's radius (7 px) keeps its shape legible to an 8 px-patch tower
(at 5.5 px the probe's encoder kept shape about 55% of the time).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from drum.builtin.world.scene import _RGB, COLOURS, SHAPES, _shape_mask

IMAGE_SIZE = 64
PATCH = 8
GRID = IMAGE_SIZE // PATCH
OBJECTS = ("big", "small")
ATTRIBUTES = ("colour", "shape")
CORNERS = 4  # top-left, top-right, bottom-left, bottom-right
SMALL_RADIUS = 7.0
BIG_RADIUS = (13.0, 16.0)
SMALL_INSET = 11.0  # the small object's centre, in pixels from the two nearest edges
NOISE_STD = 10.0
# Label of a pixel in ``render``'s object map.
BACKGROUND, BIG, SMALL = 0, 1, 2


@dataclass(frozen=True)
class TwoObjectScene:
    """The ground truth of one image."""

    big_colour: str
    big_shape: str
    small_colour: str
    small_shape: str
    corner: int
    big_radius: float
    jitter: tuple[float, float, float, float]  # big dy, dx; small dy, dx (pixels)
    background: int
    noise_seed: int

    def value(self, obj: str, attribute: str) -> str:
        """``value("small", "colour")``: the small object's colour."""
        return str(getattr(self, f"{obj}_{attribute}"))

    def edited(self, obj: str, attribute: str, value: str) -> TwoObjectScene:
        """The same scene with one attribute of one object changed (pixel noise included)."""
        return replace(self, **{f"{obj}_{attribute}": value})

    def to_meta(self) -> dict[str, object]:
        meta = asdict(self)
        meta["jitter"] = list(self.jitter)
        return meta

    @classmethod
    def from_meta(cls, meta: dict[str, object]) -> TwoObjectScene:
        """The scene ``to_meta`` wrote (a task's ``meta.jsonl``)."""
        return cls(**{**meta, "jitter": tuple(meta["jitter"])})  # type: ignore[arg-type]


def values(attribute: str) -> tuple[str, ...]:
    return COLOURS if attribute == "colour" else SHAPES


def sample_scene(rng: np.random.Generator, corner: int | None = None) -> TwoObjectScene:
    """A uniformly random scene (``corner``: fix the small object's corner)."""
    return TwoObjectScene(
        big_colour=str(rng.choice(COLOURS)),
        big_shape=str(rng.choice(SHAPES)),
        small_colour=str(rng.choice(COLOURS)),
        small_shape=str(rng.choice(SHAPES)),
        corner=int(rng.integers(CORNERS)) if corner is None else corner,
        big_radius=float(rng.uniform(*BIG_RADIUS)),
        jitter=tuple(float(v) for v in rng.uniform(-2.5, 2.5, size=4)),  # type: ignore[arg-type]
        background=int(rng.integers(15, 80)),
        noise_seed=int(rng.integers(0, 2**31 - 1)),
    )


def other_value(rng: np.random.Generator, attribute: str, current: str) -> str:
    """A uniformly drawn value of ``attribute`` other than ``current``."""
    options = [v for v in values(attribute) if v != current]
    return options[int(rng.integers(len(options)))]


def small_centre(scene: TwoObjectScene) -> tuple[float, float]:
    """``(y, x)`` of the small object's centre in pixels."""
    row, col = divmod(scene.corner, 2)
    y = SMALL_INSET if row == 0 else IMAGE_SIZE - SMALL_INSET
    x = SMALL_INSET if col == 0 else IMAGE_SIZE - SMALL_INSET
    return y + scene.jitter[2], x + scene.jitter[3]


def render(scene: TwoObjectScene) -> tuple[np.ndarray, np.ndarray]:
    """``(pixels, objects)``: ``(64, 64, 3)`` uint8 RGB and the ``(64, 64)`` map of which
    object each pixel shows (``BACKGROUND``, ``BIG``, ``SMALL``); deterministic."""
    rng = np.random.default_rng(scene.noise_seed)
    canvas = np.full((IMAGE_SIZE, IMAGE_SIZE, 3), float(scene.background), dtype=np.float32)
    objects = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.int64)
    yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float32) + 0.5
    centre = IMAGE_SIZE / 2
    placements = (
        (BIG, scene.big_shape, scene.big_colour, scene.big_radius,
         centre + scene.jitter[0], centre + scene.jitter[1]),
        (SMALL, scene.small_shape, scene.small_colour, SMALL_RADIUS, *small_centre(scene)),
    )  # fmt: skip
    shades = rng.uniform(0.85, 1.0, size=2)
    for (label, shape, colour, radius, cy, cx), shade in zip(placements, shades, strict=True):
        mask = _shape_mask(shape, yy - cy, xx - cx, radius)
        canvas[mask] = np.asarray(_RGB[colour], dtype=np.float32) * shade
        objects[mask] = label
    canvas += rng.normal(0.0, NOISE_STD, size=canvas.shape).astype(np.float32)
    return np.clip(canvas, 0, 255).astype(np.uint8), objects


def patch_objects(objects: np.ndarray, min_pixels: int = 6) -> np.ndarray:
    """``(GRID * GRID,)``: per patch (row-major) the object covering most of its pixels when it
    covers at least ``min_pixels`` of them, else ``BACKGROUND``; the small object wins ties."""
    blocks = objects.reshape(GRID, PATCH, GRID, PATCH).transpose(0, 2, 1, 3).reshape(GRID**2, -1)
    counts = np.stack([(blocks == label).sum(1) for label in (BIG, SMALL)], axis=1)
    winner = np.where(counts[:, 1] >= counts[:, 0], SMALL, BIG)
    return np.where(counts.max(1) >= min_pixels, winner, BACKGROUND)


def small_object_patches(scene: TwoObjectScene) -> np.ndarray:
    """``(GRID * GRID,)`` bools: the patches ``patch_objects`` gives the small object."""
    return patch_objects(render(scene)[1]) == SMALL

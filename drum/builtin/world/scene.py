"""Scenes: 1-3 identical shapes of one colour and size on a noisy background, rendered to RGB.

The attributes a question can ask about are shape, colour, size and count. Position (cells of a
3x3 grid), background brightness and pixel noise are nuisances: they change the pixels, never
the answer, so raw-pixel or embedding similarity is an imperfect proxy for "same answer".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SHAPES = ("circle", "square", "triangle", "cross", "diamond")
COLOURS = ("red", "green", "blue", "yellow", "magenta", "cyan")
SIZES = ("small", "large")
COUNTS = (1, 2, 3)
GRID = 3

_RGB = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (50, 80, 230),
    "yellow": (230, 210, 40),
    "magenta": (210, 50, 200),
    "cyan": (40, 200, 210),
}
# Radius in pixels as a fraction of one grid cell.
_RADIUS_FRACTION = {"small": 0.28, "large": 0.45}


@dataclass(frozen=True)
class Scene:
    """The ground truth of one image."""

    shape: str
    colour: str
    size: str
    count: int
    cells: tuple[int, ...]  # occupied cells of the 3x3 grid, row-major
    background: int  # grey level 0..255
    noise_seed: int

    def attributes(self) -> dict[str, str | int]:
        return {"shape": self.shape, "colour": self.colour, "size": self.size, "count": self.count}

    def to_meta(self) -> dict[str, object]:
        return {**self.attributes(), "cells": list(self.cells), "background": self.background}


def sample_scene(rng: np.random.Generator) -> Scene:
    """A uniformly random scene (each attribute independent and uniform)."""
    count = int(rng.choice(COUNTS))
    cells = tuple(sorted(int(c) for c in rng.choice(GRID * GRID, size=count, replace=False)))
    return Scene(
        shape=str(rng.choice(SHAPES)),
        colour=str(rng.choice(COLOURS)),
        size=str(rng.choice(SIZES)),
        count=count,
        cells=cells,
        background=int(rng.integers(10, 90)),
        noise_seed=int(rng.integers(0, 2**31 - 1)),
    )


def _shape_mask(shape: str, yy: np.ndarray, xx: np.ndarray, radius: float) -> np.ndarray:
    """Boolean mask of ``shape`` centred at the origin of the ``(yy, xx)`` offset grids."""
    ay, ax = np.abs(yy), np.abs(xx)
    if shape == "circle":
        return yy**2 + xx**2 <= radius**2
    if shape == "square":
        return (ay <= radius * 0.85) & (ax <= radius * 0.85)
    if shape == "diamond":
        return ay + ax <= radius * 1.15
    if shape == "cross":
        arm = max(radius * 0.35, 0.75)
        return ((ay <= arm) & (ax <= radius)) | ((ax <= arm) & (ay <= radius))
    if shape == "triangle":
        # Apex up: the half-width grows linearly from the top edge to the bottom edge.
        top, bottom = -radius, radius * 0.8
        half_width = (yy - top) / (bottom - top) * radius
        return (yy >= top) & (yy <= bottom) & (ax <= half_width)
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def render_scene(scene: Scene, image_size: int = 32, noise_std: float = 12.0) -> np.ndarray:
    """``(image_size, image_size, 3)`` uint8 RGB rendering of ``scene`` (deterministic)."""
    rng = np.random.default_rng(scene.noise_seed)
    cell = image_size / GRID
    canvas = np.full((image_size, image_size, 3), float(scene.background), dtype=np.float32)
    yy, xx = np.mgrid[0:image_size, 0:image_size].astype(np.float32) + 0.5
    radius = _RADIUS_FRACTION[scene.size] * cell
    colour = np.asarray(_RGB[scene.colour], dtype=np.float32)
    for index in scene.cells:
        row, col = divmod(index, GRID)
        # Jitter the centre inside its cell so positions are not on a fixed lattice.
        slack = max(cell / 2 - radius - 0.5, 0.0)
        centre_y = (row + 0.5) * cell + rng.uniform(-slack, slack)
        centre_x = (col + 0.5) * cell + rng.uniform(-slack, slack)
        mask = _shape_mask(scene.shape, yy - centre_y, xx - centre_x, radius)
        shade = colour * rng.uniform(0.85, 1.0)
        canvas[mask] = shade
    canvas += rng.normal(0.0, noise_std, size=canvas.shape).astype(np.float32)
    return np.clip(canvas, 0, 255).astype(np.uint8)

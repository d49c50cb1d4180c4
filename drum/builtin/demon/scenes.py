"""Scene primitives of the built-in DEMON tasks: scenes with fixed attributes, one-attribute
edits (the near-identical pairs), handwritten digits drawn into a cell, and the words that
name attribute values.

Every function draws from the ``rng`` it is given, so a task is deterministic from its seed.
"""

from __future__ import annotations

import functools
from dataclasses import replace

import numpy as np
from PIL import Image

from drum.builtin.world.language import COUNT_WORDS, PLURALS, canonical_caption
from drum.builtin.world.scene import COLOURS, COUNTS, GRID, SHAPES, SIZES, Scene

ATTRIBUTES = ("shape", "colour", "size", "count")
VALUES: dict[str, tuple[str | int, ...]] = {
    "shape": SHAPES,
    "colour": COLOURS,
    "size": SIZES,
    "count": COUNTS,
}
ORDINALS = ("first", "second", "third", "fourth")
LETTERS = ("A", "B", "C", "D")
DIGIT_CELL = 0  # the top-left cell holds the handwritten digit of a text-rich image


def word(attribute: str, value: str | int) -> str:
    """The world's word for a value: count words (``two``), else the value itself."""
    return COUNT_WORDS[int(value)] if attribute == "count" else str(value)


def value_of(scene: Scene, attribute: str) -> str:
    """The word for ``scene``'s value of ``attribute``."""
    return word(attribute, scene.attributes()[attribute])


def noun(scene: Scene) -> str:
    return scene.shape if scene.count == 1 else PLURALS[scene.shape]


def caption(scene: Scene) -> str:
    return canonical_caption(scene)


ROW_WORDS = ("top", "middle", "bottom")
COLUMN_WORDS = ("left", "centre", "right")


def cell_name(cell: int) -> str:
    """``top left`` .. ``bottom right``: the words for a cell of the 3x3 grid."""
    row, col = divmod(cell, GRID)
    return f"{ROW_WORDS[row]} {COLUMN_WORDS[col]}"


def move_one(scene: Scene, rng: np.random.Generator) -> tuple[Scene, int, int]:
    """``scene`` with one object moved to a free cell apart from the others (the rest, noise
    included, kept); also the cell it left and the cell it went to."""
    cells = list(scene.cells)
    source = cells.pop(int(rng.integers(len(cells))))
    free = [c for c in range(GRID * GRID) if c != source and c not in cells and _apart(cells, c)]
    target = int(free[int(rng.integers(len(free)))])
    return replace(scene, cells=tuple(sorted([*cells, target]))), int(source), target


def _adjacent(a: int, b: int) -> bool:
    (ra, ca), (rb, cb) = divmod(a, GRID), divmod(b, GRID)
    return abs(ra - rb) + abs(ca - cb) == 1


def _apart(cells: list[int], cell: int) -> bool:
    return not any(_adjacent(cell, other) for other in cells)


def spread_cells(
    rng: np.random.Generator, count: int, free_cells: tuple[int, ...]
) -> tuple[int, ...]:
    """``count`` cells of ``free_cells``, no two side by side: the world's large diamonds in
    neighbouring cells touch at 32 pixels and would read as one object, so a count in these
    tasks is always what the image shows."""
    while True:
        cells = [int(c) for c in rng.choice(free_cells, size=count, replace=False)]
        if all(_apart(cells[:i], c) for i, c in enumerate(cells)):
            return tuple(sorted(cells))


def make_scene(
    rng: np.random.Generator,
    free_cells: tuple[int, ...] = tuple(range(GRID * GRID)),
    **fixed: str | int,
) -> Scene:
    """A random scene with the ``fixed`` attributes, its objects in ``free_cells``."""
    values = {a: fixed.get(a, VALUES[a][int(rng.integers(len(VALUES[a])))]) for a in ATTRIBUTES}
    count = int(values["count"])
    cells = spread_cells(rng, count, free_cells)
    return Scene(
        shape=str(values["shape"]),
        colour=str(values["colour"]),
        size=str(values["size"]),
        count=count,
        cells=cells,
        background=int(rng.integers(10, 90)),
        noise_seed=int(rng.integers(0, 2**31 - 1)),
    )


def with_value(scene: Scene, attribute: str, value: str | int, rng: np.random.Generator) -> Scene:
    """``scene`` with one attribute set to ``value``; the rest, noise included, kept (a count
    change adds objects in free cells apart from the others, never the digit's, or removes
    some, keeping the others where they were)."""
    if attribute != "count":
        return replace(scene, **{attribute: str(value)})
    count = int(value)
    cells = list(scene.cells)
    if count < len(cells):
        keep = sorted(int(i) for i in rng.choice(len(cells), size=count, replace=False))
        cells = [cells[i] for i in keep]
    while len(cells) < count:
        free = [c for c in range(GRID * GRID) if c not in cells and c != DIGIT_CELL]
        free = [c for c in free if _apart(cells, c)]
        cells.append(int(free[int(rng.integers(len(free)))]))
    return replace(scene, count=count, cells=tuple(sorted(cells)))


def edit(scene: Scene, attribute: str, rng: np.random.Generator) -> Scene:
    """``scene`` with ``attribute`` changed to a different value drawn uniformly."""
    current = scene.attributes()[attribute]
    others = [v for v in VALUES[attribute] if v != current]
    return with_value(scene, attribute, others[int(rng.integers(len(others)))], rng)


def reshuffle(scene: Scene, rng: np.random.Generator) -> Scene:
    """The same attributes with fresh cells, background and noise (another photo of it)."""
    return make_scene(rng, **scene.attributes())


def distinct_values(attribute: str, n: int, rng: np.random.Generator) -> list[str | int]:
    values = VALUES[attribute]
    return [values[int(i)] for i in rng.choice(len(values), size=n, replace=False)]


@functools.cache
def _digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled handwritten digits (1,797 8x8 images, values 0..16)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.images.astype(np.float32) / 16.0, data.target.astype(np.int64)


def digit_indices(digit: int, split_parity: int) -> np.ndarray:
    """Indices of the handwritten ``digit``s of one split: even indices train, odd test, so the
    two splits never share a sample."""
    _, targets = _digits()
    indices = np.flatnonzero(targets == digit)
    return indices[indices % 2 == split_parity]


def draw_digit(pixels: np.ndarray, digit_index: int) -> np.ndarray:
    """``pixels`` with handwritten digit ``digit_index`` drawn white into ``DIGIT_CELL``."""
    images, _ = _digits()
    cell = pixels.shape[0] // GRID
    glyph = Image.fromarray((images[digit_index] * 255).astype(np.uint8))
    alpha = np.asarray(glyph.resize((cell, cell), Image.BILINEAR), dtype=np.float32) / 255.0
    row, col = divmod(DIGIT_CELL, GRID)
    out = pixels.astype(np.float32)
    patch = out[row * cell : (row + 1) * cell, col * cell : (col + 1) * cell]
    patch[:] = patch * (1 - alpha[..., None]) + 255.0 * alpha[..., None]
    return np.clip(out, 0, 255).astype(np.uint8)

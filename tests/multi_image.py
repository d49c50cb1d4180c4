"""Examples of one, two and three images over the ``image_paths`` fixture's PNGs, shared by
the embedding and retrieval tests."""

from __future__ import annotations

from pathlib import Path

from drum.data.example import Example


def multi_image_pool(paths: list[Path]) -> list[Example]:
    """Examples of one, two and three images, sharing some images between them."""
    groups = [(0,), (1, 2), (3,), (4, 5, 6), (2, 7), (8,), (9, 10), (11,), (0, 9)]
    return [
        Example(f"m{i}", tuple(paths[j] for j in group), f"text {i}", ("a",), "vqa")
        for i, group in enumerate(groups)
    ]

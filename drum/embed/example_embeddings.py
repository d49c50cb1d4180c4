"""``ExampleEmbeddings``: the image and text embeddings of a list of examples (a task's pool or
its queries), row ``i`` for ``examples[i]``, computed through an ``Embedder`` (and its cache).

Retrieval compares these rows (``drum.retrieve``); embedding them is this package's work, so
the class lives here and ``drum.embed`` never imports ``drum.retrieve``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from drum.data.example import Example
from drum.embed.base import Embedder, l2_normalize
from drum.embed.cache import EmbeddingCache


@dataclass
class ExampleEmbeddings:
    """Image and text embeddings of a list of examples, row ``i`` for ``examples[i]``.

    An example with several images is represented by the mean of its images' L2-normalised
    embeddings, L2-normalised again: ``normalize(mean_j e(image_j))``, a unit vector like any
    other row (an example with one image keeps that image's embedding as it is).

    Example::

        pool = ExampleEmbeddings.compute(examples, embedder, EmbeddingCache("runs/cache"))
        pool.image.shape, pool.text.shape  # (len(examples), embedder.dim) each
    """

    examples: list[Example]
    image: np.ndarray  # (N, D)
    text: np.ndarray  # (N, D)

    @classmethod
    def compute(
        cls,
        examples: Sequence[Example],
        embedder: Embedder,
        cache: EmbeddingCache | None = None,
        progress: bool = False,
    ) -> ExampleEmbeddings:
        """Embed every example's images and text (through ``cache``: each distinct image or
        text once, ever)."""
        imageless = [example.id for example in examples if not example.images]
        if imageless:
            raise ValueError(f"Example {imageless[0]!r} has no image")
        counts = [len(example.images) for example in examples]
        images = [path for example in examples for path in example.images]
        texts = [example.text for example in examples]
        if cache is not None:
            flat = cache.embed_images(embedder, images, progress=progress)
            text = cache.embed_texts(embedder, texts, progress=progress)
        else:
            flat = embedder.embed_images(images, progress=progress)
            text = embedder.embed_texts(texts, progress=progress)
        return cls(list(examples), _mean_per_example(flat, counts), text)


def _mean_per_example(flat: np.ndarray, counts: Sequence[int]) -> np.ndarray:
    """Consecutive rows of ``flat``, ``counts[i]`` of them for example ``i`` -> one unit vector
    per example (see ``ExampleEmbeddings``). A single row is kept untouched: renormalising a
    unit vector could move its last bits, and single-image examples must not change."""
    if all(count == 1 for count in counts):
        return flat
    rows = np.empty((len(counts), flat.shape[1]), dtype=np.float32)  # (N, D)
    start = 0
    for row, count in enumerate(counts):
        group = flat[start : start + count]  # (count, D)
        rows[row] = group[0] if count == 1 else l2_normalize(group.mean(axis=0))
        start += count
    return rows

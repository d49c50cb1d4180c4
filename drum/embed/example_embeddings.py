"""``ExampleEmbeddings``: the image and text embeddings of a list of examples (a task's pool or
its queries), row ``i`` for ``examples[i]``, computed through an ``Embedder`` (and its cache);
with a ``JointEmbedder``, also (or only) each example's joint embedding, its images and text
embedded together (``parts``).

Retrieval compares these rows (``drum.retrieve``); embedding them is this package's work, so
the class lives here and ``drum.embed`` never imports ``drum.retrieve``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from drum.data.example import Example
from drum.embed.base import Embedder, JointEmbedder, l2_normalize
from drum.embed.cache import EmbeddingCache

PARTS = ("image", "text", "joint")


@dataclass
class ExampleEmbeddings:
    """Image and text embeddings of a list of examples, row ``i`` for ``examples[i]``.

    An example with several images is represented by the mean of its images' L2-normalised
    embeddings, L2-normalised again: ``normalize(mean_j e(image_j))``, a unit vector like any
    other row (an example with one image keeps that image's embedding as it is).

    ``joint`` (``parts`` with ``"joint"``, a ``JointEmbedder``): each example's images and text
    embedded together, one unit row per example, else None. Parts not computed are ``(N, 0)``
    arrays (``has``), which a strategy that needs them refuses.

    Example::

        pool = ExampleEmbeddings.compute(examples, embedder, EmbeddingCache("runs/cache"))
        pool.image.shape, pool.text.shape  # (len(examples), embedder.dim) each
        joint = ExampleEmbeddings.compute(examples, lvlm_embedder, parts=("joint",))
        joint.joint.shape  # (len(examples), lvlm_embedder.dim)
    """

    examples: list[Example]
    image: np.ndarray  # (N, D)
    text: np.ndarray  # (N, D)
    joint: np.ndarray | None = None  # (N, D), images and text embedded together

    def has(self, part: str) -> bool:
        """Whether ``part`` (``image``, ``text`` or ``joint``) was computed."""
        if part == "joint":
            return self.joint is not None
        return getattr(self, part).shape[1] > 0 or not self.examples

    @classmethod
    def compute(
        cls,
        examples: Sequence[Example],
        embedder: Embedder,
        cache: EmbeddingCache | None = None,
        progress: bool = False,
        parts: Collection[str] = ("image", "text"),
    ) -> ExampleEmbeddings:
        """Embed every example's images and text (through ``cache``: each distinct image,
        text or pair once, ever): the ``parts`` asked for, of ``PARTS`` (``image`` and
        ``text`` are computed together: either one asks for both)."""
        unknown = sorted(set(parts) - set(PARTS))
        if unknown or not parts:
            raise ValueError(f"parts must be a non-empty subset of {PARTS}, got {sorted(parts)}")
        imageless = [example.id for example in examples if not example.images]
        if imageless:
            raise ValueError(f"Example {imageless[0]!r} has no image")
        joint = None
        if "joint" in parts:
            if not isinstance(embedder, JointEmbedder):
                raise ValueError(
                    f"joint embeddings need a JointEmbedder (e.g. drum.embed.joint."
                    f"LVLMEmbedder); {type(embedder).__name__} embeds images and texts apart"
                )
            joint = (
                cache.embed_examples(embedder, examples, progress=progress)
                if cache is not None
                else embedder.embed_examples(examples, progress=progress)
            )
        if "image" not in parts and "text" not in parts:
            empty = np.zeros((len(examples), 0), dtype=np.float32)
            return cls(list(examples), empty, empty, joint)
        counts = [len(example.images) for example in examples]
        images = [path for example in examples for path in example.images]
        texts = [example.text for example in examples]
        if cache is not None:
            flat = cache.embed_images(embedder, images, progress=progress)
            text = cache.embed_texts(embedder, texts, progress=progress)
        else:
            flat = embedder.embed_images(images, progress=progress)
            text = embedder.embed_texts(texts, progress=progress)
        return cls(list(examples), _mean_per_example(flat, counts), text, joint)


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

"""The embedder interface every backend implements.

An embedder maps images and texts to L2-normalised float32 vectors, batched. Image and text
vectors live in one shared space (CLIP-style), so cross-modal similarity is meaningful.

A ``JointEmbedder`` also maps an (images, text) pair to one vector computed from both at once
(an LVLM reading the images and the text together, ``drum.embed.joint``), rather than from
two separate embeddings; the ``joint`` retrieval strategy compares those.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from drum.data.example import Example
from drum.data.images import ImageInput


def l2_normalize(vectors: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows divided by their L2 norm: ``x / max(||x||_2, eps)``, as float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, eps)


class Embedder(ABC):
    """Images and texts -> L2-normalised ``(N, dim)`` float32 arrays."""

    @property
    @abstractmethod
    def dim(self) -> int:
        """Size of the shared embedding space."""

    @property
    @abstractmethod
    def fingerprint(self) -> str:
        """A short string that changes whenever the embedder's outputs could change.

        Caches key on it: two embedders with one fingerprint must give the same vectors.
        """

    @abstractmethod
    def embed_images(
        self, images: Sequence[ImageInput], batch_size: int = 64, progress: bool = False
    ) -> np.ndarray:
        """``(len(images), dim)`` float32, rows of unit norm."""

    @abstractmethod
    def embed_texts(
        self, texts: Sequence[str], batch_size: int = 256, progress: bool = False
    ) -> np.ndarray:
        """``(len(texts), dim)`` float32, rows of unit norm."""


class JointEmbedder(Embedder):
    """An ``Embedder`` that also embeds an example's images and text together, in one pass.

    ``embed_pairs(images, texts)[i]`` is one unit vector for the pair (``images[i]``, in
    order, then ``texts[i]``); ``embed_examples`` is the same for examples (their images, then
    their text). Caches key joint rows on the fingerprint and the pair's content
    (``EmbeddingCache.embed_examples``).
    """

    @abstractmethod
    def embed_pairs(
        self,
        images: Sequence[Sequence[ImageInput]],
        texts: Sequence[str],
        batch_size: int = 16,
        progress: bool = False,
    ) -> np.ndarray:
        """``(len(texts), dim)`` float32, rows of unit norm: row ``i`` embeds ``images[i]``
        and ``texts[i]`` together."""

    def embed_examples(
        self, examples: Sequence[Example], batch_size: int = 16, progress: bool = False
    ) -> np.ndarray:
        """``embed_pairs`` of every example's images and text."""
        return self.embed_pairs(
            [example.images for example in examples],
            [example.text for example in examples],
            batch_size=batch_size,
            progress=progress,
        )

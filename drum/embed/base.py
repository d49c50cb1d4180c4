"""The embedder interface every backend implements.

An embedder maps images and texts to L2-normalised float32 vectors, batched. Image and text
vectors live in one shared space (CLIP-style), so cross-modal similarity is meaningful.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

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

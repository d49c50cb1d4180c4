"""Unit vectors around random centres: data on which IVF / PQ indexes behave as on real
embeddings (clustered), shared by the index tests."""

from __future__ import annotations

import numpy as np


def clustered(n: int, dim: int, seed: int, n_centres: int, noise: float) -> np.ndarray:
    """``(n, dim)`` float32 unit vectors, each a random one of ``n_centres`` Gaussian centres
    plus ``noise`` times Gaussian noise, normalised."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_centres, dim)).astype(np.float32)
    vectors = centres[rng.integers(0, n_centres, n)] + noise * rng.standard_normal((n, dim))
    vectors = vectors.astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

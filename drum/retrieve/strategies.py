"""Retrieval strategies: how a query and a pool example are compared.

Every similarity strategy is a pair of maps from an example's (image, text) embeddings to one
unit vector, one map for queries and one for the pool, so that a single inner product in a
FAISS index gives its score:

=========  ===========================================  ==========================================
name       query vector                                 pool vector / resulting score
=========  ===========================================  ==========================================
image      ``i_q``                                      ``i_p``:  ``cos(i_q, i_p)``
text       ``t_q``                                      ``t_p``:  ``cos(t_q, t_p)``
cross      ``[i_q, t_q] / sqrt 2``                      ``[t_p, i_p] / sqrt 2``:
                                                        ``(cos(i_q, t_p) + cos(t_q, i_p)) / 2``
concat     ``[sqrt(w) i_q, sqrt(1-w) t_q]``             ``[sqrt(w) i_p, sqrt(1-w) t_p]``:
                                                        ``w cos(i_q, i_p) + (1-w) cos(t_q, t_p)``
=========  ===========================================  ==========================================

``concat`` is DRUM's proposal (the L2-normalised image and text embeddings concatenated);
``drum`` is ``concat`` over the embedder DRUM fine-tuned. ``random`` and ``fixed`` ignore
similarity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SIMILARITY_STRATEGIES = ("image", "text", "cross", "concat", "drum")
STRATEGIES = ("random", "fixed", *SIMILARITY_STRATEGIES)
ORDERS = ("similar_last", "similar_first", "random")


@dataclass(frozen=True)
class RetrievalConfig:
    """How demonstrations are chosen and ordered.

    Attributes:
        strategy: one of ``STRATEGIES``.
        k: demonstrations per query (the shot count).
        order: prompt order; ``similar_last`` (default, as RICES) puts the best match next to
            the query.
        image_weight: ``w`` of the ``concat`` / ``drum`` score.
        exclude_self: never use a pool example with the query's id or identical content.
        seed: for ``random``, ``fixed`` and ``order="random"``.
    """

    strategy: str = "concat"
    k: int = 4
    order: str = "similar_last"
    image_weight: float = 0.5
    exclude_self: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}; choose one of {STRATEGIES}")
        if self.k < 0:
            raise ValueError(f"k must be >= 0, got {self.k}")
        if self.order not in ORDERS:
            raise ValueError(f"unknown order {self.order!r}; choose one of {ORDERS}")
        if not 0.0 <= self.image_weight <= 1.0:
            raise ValueError(f"image_weight must be in [0, 1], got {self.image_weight}")

    @property
    def uses_similarity(self) -> bool:
        return self.strategy in SIMILARITY_STRATEGIES


def query_vectors(config: RetrievalConfig, image: np.ndarray, text: np.ndarray) -> np.ndarray:
    """The unit vectors that represent queries under ``config.strategy``."""
    return _combine(config, image, text, side="query")


def pool_vectors(config: RetrievalConfig, image: np.ndarray, text: np.ndarray) -> np.ndarray:
    """The unit vectors that represent pool examples under ``config.strategy``."""
    return _combine(config, image, text, side="pool")


def _combine(config: RetrievalConfig, image: np.ndarray, text: np.ndarray, side: str) -> np.ndarray:
    strategy = config.strategy
    if strategy == "image":
        combined = image
    elif strategy == "text":
        combined = text
    elif strategy == "cross":
        pair = (image, text) if side == "query" else (text, image)
        combined = np.concatenate(pair, axis=1) / math.sqrt(2.0)
    elif strategy in ("concat", "drum"):
        w = config.image_weight
        combined = np.concatenate([math.sqrt(w) * image, math.sqrt(1.0 - w) * text], axis=1)
    else:
        raise ValueError(f"strategy {strategy!r} does not compare embeddings")
    return np.ascontiguousarray(combined, dtype=np.float32)

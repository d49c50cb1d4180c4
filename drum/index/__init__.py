"""Vector indexes over example embeddings: a thin FAISS wrapper with an id sidecar."""

from drum.index.faiss_index import (
    INDEX_FILE,
    SIDECAR_FILE,
    VECTORS_FILE,
    IndexConfig,
    IndexFileError,
    VectorIndex,
    brute_force_search,
)

__all__ = [
    "INDEX_FILE",
    "SIDECAR_FILE",
    "VECTORS_FILE",
    "IndexConfig",
    "IndexFileError",
    "VectorIndex",
    "brute_force_search",
]

"""Vector indexes over example embeddings: a thin FAISS wrapper with an id sidecar.

The names below load lazily (PEP 562): importing the package imports none of its modules,
so no FAISS until an index is used.
"""

from drum.utils.lazy import lazy_exports

__all__ = [
    "INDEX_FILE",
    "IndexConfig",
    "IndexFileError",
    "SIDECAR_FILE",
    "VECTORS_FILE",
    "VectorIndex",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "INDEX_FILE": "drum.index.faiss_index",
        "SIDECAR_FILE": "drum.index.faiss_index",
        "VECTORS_FILE": "drum.index.faiss_index",
        "IndexConfig": "drum.index.config",
        "IndexFileError": "drum.index.faiss_index",
        "VectorIndex": "drum.index.faiss_index",
    },
)

"""The vectors an index keeps for exact re-ranking (``IndexConfig.rerank``), by insertion
position: a growing in-RAM buffer while the index is built, a read-only memory map of the saved
``vectors.npy`` after ``VectorIndex.load``; and the streamed ``.npy`` writer that saves them."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import numpy as np


class VectorStore:
    """The vectors kept for exact re-ranking, by insertion position.

    Either an in-RAM buffer that grows by doubling (so ``n`` appends cost O(n) copies in all),
    or a read-only memory map of a saved ``vectors.npy``; appending to a map first copies it
    into RAM (the map is never written to).
    """

    def __init__(self, dim: int, dtype: str) -> None:
        self._dtype = np.dtype(dtype)
        self._buffer: np.ndarray = np.empty((0, dim), dtype=self._dtype)
        self._size = 0
        self.path: Path | None = None  # the mapped file, None while the vectors are in RAM

    @classmethod
    def mapped(cls, path: Path, array: np.ndarray) -> VectorStore:
        store = cls(int(array.shape[1]), str(array.dtype))
        store._buffer, store._size, store.path = array, len(array), path
        return store

    @property
    def array(self) -> np.ndarray:
        """The ``(n, dim)`` vectors (a view, or the memory map itself)."""
        return self._buffer[: self._size]

    def __len__(self) -> int:
        return self._size

    def append(self, vectors: np.ndarray) -> None:
        needed = self._size + len(vectors)
        if self.path is not None or needed > len(self._buffer):
            capacity = needed if self.path is not None else max(needed, 2 * len(self._buffer))
            grown = np.empty((capacity, self._buffer.shape[1]), dtype=self._dtype)
            grown[: self._size] = self._buffer[: self._size]
            self._buffer, self.path = grown, None
        self._buffer[self._size : needed] = vectors
        self._size = needed

    def converted(self, vectors: np.ndarray, what: str) -> np.ndarray:
        """``vectors`` in the store's dtype; float16 overflow (|x| > 65504) is an error."""
        with np.errstate(over="ignore"):
            out = vectors.astype(self._dtype, copy=False)
        if not np.isfinite(out).all():
            bad_row = int(np.flatnonzero(~np.isfinite(out).all(axis=1))[0])
            raise ValueError(
                f"{what} overflow {self._dtype} (first at row {bad_row}); "
                "use rerank_dtype='float32'"
            )
        return out


def write_npy(handle: Any, array: np.ndarray) -> str:
    """Write ``array`` to ``handle`` in ``.npy`` format; returns the sha256 of the bytes written.

    Streamed in row blocks, so a memory-mapped array is never read into RAM whole.
    """
    digest = hashlib.sha256()

    def write(data: bytes | memoryview) -> None:
        digest.update(data)
        handle.write(data)

    header = {"descr": np.lib.format.dtype_to_descr(array.dtype), "fortran_order": False}
    header["shape"] = array.shape
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    write(buffer.getvalue())
    rows = max(1, (16 << 20) // max(1, array.shape[1] * array.itemsize))
    for start in range(0, len(array), rows):
        write(memoryview(np.ascontiguousarray(array[start : start + rows])).cast("B"))
    return digest.hexdigest()

"""A thin FAISS wrapper: the FAISS index plus a sidecar of example ids, saved atomically.

Searches behave exactly like FAISS (``(scores, labels)``, labels are insertion positions, ``-1``
where fewer than ``k`` results exist); ``search_ids`` maps positions to example ids. ``ip``
scores are inner products (higher is closer), ``l2`` scores are squared distances (lower is
closer), as in FAISS.

On disk a saved index is a directory with ``index.faiss`` (``faiss.serialize_index`` bytes) and
``index.json`` (dim, config, ids, ntotal, a sha256 of ``index.faiss`` and the caller's ``meta``).

Exact re-ranking (``IndexConfig.rerank = k'``): the FAISS index (typically a compressed one such
as ``IVF4096,PQ64``, 64 bytes a vector instead of ``4 * dim``) returns its top ``k'`` candidates,
and those are re-scored by the exact inner product (or squared L2 distance) with the stored
vectors, keeping the best ``k``. The stored vectors are kept apart from the FAISS index, in
``vectors.npy`` beside it: after ``load`` they are a read-only memory map, so a search reads only
the ``k'`` candidate rows of each query from it and the process's own memory holds just the
compressed index (the pages read are clean file-backed pages the kernel may drop at any time).
This is unlike FAISS's ``IndexRefineFlat`` (``...,RFlat``), which keeps a float copy of every
vector in RAM, more than a flat index on its own. While an index is being built (before it is
saved, or after ``add`` on a loaded one) its vectors are in RAM.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from drum.index.config import METRICS, IndexConfig
from drum.index.stored_vectors import VectorStore, write_npy
from drum.utils.fingerprint import sha256_file
from drum.utils.io import atomic_open

INDEX_FILE = "index.faiss"
SIDECAR_FILE = "index.json"
VECTORS_FILE = "vectors.npy"
FORMAT_VERSION = 1
# Re-ranking gathers (queries, k', dim) candidate rows; this many bytes of them at a time.
RERANK_CHUNK_BYTES = 32 << 20
_FLT_MAX = float(np.finfo(np.float32).max)


class IndexFileError(ValueError):
    """A saved index that cannot be loaded; the message names the file and the problem."""

    def __init__(self, path: str | os.PathLike[str], message: str) -> None:
        self.path = Path(path)
        super().__init__(f"{self.path}: {message}")


def _faiss_message(exc: BaseException) -> str:
    """The human part of a FAISS C++ error, without the 'Error in <signature> at file:line',
    on one line."""
    text = str(exc)
    match = re.search(r"\.(?:cpp|h):\d+: (.*)", text, flags=re.DOTALL)
    return " ".join((match.group(1) if match else text).split())


def _as_matrix(vectors: np.ndarray, dim: int, what: str) -> np.ndarray:
    """``vectors`` as a C-contiguous float32 ``(n, dim)`` array of finite values."""
    array = np.asarray(vectors)
    if array.ndim != 2:
        raise ValueError(
            f"{what} must be a 2-D (n, {dim}) array, got shape {array.shape}"
            + ("; use vectors.reshape(1, -1) for a single vector" if array.ndim == 1 else "")
        )
    if array.shape[1] != dim:
        raise ValueError(f"{what} have dimension {array.shape[1]}, but the index has dim {dim}")
    # No copy when the input is already float32 and C-contiguous (the common case).
    array = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        bad_row = int(np.flatnonzero(~np.isfinite(array).all(axis=1))[0])
        raise ValueError(f"{what} contain NaN or inf (first at row {bad_row})")
    return array


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k <= 0:
        raise ValueError(f"k must be a positive int, got {k!r}")
    return int(k)


class VectorIndex:
    """A FAISS index whose rows are example ids; see the module docstring."""

    def __init__(
        self, dim: int, config: IndexConfig | None = None, meta: Mapping[str, Any] | None = None
    ) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0:
            raise ValueError(f"dim must be a positive int, got {dim!r}")
        self._config = config if config is not None else IndexConfig()
        try:
            index = faiss.index_factory(dim, self._config.factory, METRICS[self._config.metric])
        except RuntimeError as exc:
            raise ValueError(
                f"invalid FAISS factory string {self._config.factory!r}: {_faiss_message(exc)}"
            ) from exc
        store = None if self._config.rerank is None else VectorStore(dim, self._config.rerank_dtype)
        self._init(index, [], meta, store)

    def _init(
        self,
        index: faiss.Index,
        ids: list[str],
        meta: Mapping[str, Any] | None,
        store: VectorStore | None,
    ) -> None:
        self._index = index
        self._ids = ids
        self._id_set = set(ids)
        self._meta = dict(meta) if meta is not None else {}
        self._store = store
        self._apply_search_parameters()

    def _apply_search_parameters(self) -> None:
        # ParameterSpace reaches through wrappers (PreTransform, IVF quantizers), unlike
        # setting attributes on the top-level index object.
        space = faiss.ParameterSpace()
        for name, value in (("nprobe", self._config.nprobe), ("efSearch", self._config.ef_search)):
            if value is None:
                continue
            try:
                space.set_index_parameter(self._index, name, value)
            except RuntimeError as exc:
                option = "nprobe" if name == "nprobe" else "ef_search"
                raise ValueError(
                    f"{option}={value} does not apply to factory {self._config.factory!r}"
                    f" ({_faiss_message(exc)})"
                ) from exc

    # -- properties -------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        return int(self._index.d)

    @property
    def config(self) -> IndexConfig:
        return dataclasses.replace(self._config)

    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal)

    def __len__(self) -> int:
        return self.ntotal

    @property
    def ids(self) -> list[str]:
        """Example ids by position (a copy)."""
        return list(self._ids)

    @property
    def meta(self) -> dict[str, Any]:
        """Free-form caller metadata stored with the index (a shallow copy)."""
        return dict(self._meta)

    @property
    def is_trained(self) -> bool:
        return bool(self._index.is_trained)

    @property
    def faiss_index(self) -> faiss.Index:
        """The underlying FAISS index, for what this wrapper does not cover (its own searches
        do not re-rank)."""
        return self._index

    def index_bytes(self) -> int:
        """Size of the FAISS index serialised (``faiss.serialize_index``), which is what it
        holds in RAM (codes, ids, centroids, codebooks); without the re-rank vectors."""
        return int(faiss.serialize_index(self._index).size)

    @property
    def rerank_vectors(self) -> np.ndarray | None:
        """The ``(ntotal, dim)`` vectors kept for re-ranking (read-only view), None without
        ``rerank``."""
        if self._store is None:
            return None
        view = self._store.array.view()
        view.flags.writeable = False
        return view

    @property
    def rerank_vectors_path(self) -> Path | None:
        """The ``vectors.npy`` the re-rank vectors are memory-mapped from, None while they are
        in RAM (being built) or without ``rerank``."""
        return None if self._store is None else self._store.path

    def __repr__(self) -> str:
        return (
            f"VectorIndex(dim={self.dim}, factory={self._config.factory!r}, "
            f"metric={self._config.metric!r}, ntotal={self.ntotal})"
        )

    # -- building ---------------------------------------------------------------------------

    def train(self, vectors: np.ndarray) -> None:
        """Train the index (IVF centroids, PQ codebooks); Flat and HNSW need no training."""
        array = _as_matrix(vectors, self.dim, "training vectors")
        try:
            self._index.train(array)
        except RuntimeError as exc:
            raise ValueError(
                f"training factory {self._config.factory!r} on {len(array)} vectors failed: "
                f"{_faiss_message(exc)}"
            ) from exc

    def add(self, vectors: np.ndarray, ids: Sequence[str]) -> None:
        """Append ``vectors`` (``(N, dim)``) under example ``ids``.

        An untrained index is first trained on these vectors; if they are too few for that,
        a ValueError says to call ``train`` with a larger sample.
        """
        array = _as_matrix(vectors, self.dim, "vectors")
        ids = list(ids)
        if len(ids) != len(array):
            raise ValueError(f"got {len(array)} vectors but {len(ids)} ids")
        seen: set[str] = set()
        for example_id in ids:
            if not isinstance(example_id, str):
                raise ValueError(f"ids must be strings, got {example_id!r}")
            if example_id in seen:
                raise ValueError(f"duplicate id {example_id!r} in this add() call")
            if example_id in self._id_set:
                raise ValueError(f"duplicate id {example_id!r}: already in the index")
            seen.add(example_id)
        if not len(array):
            return
        stored = None if self._store is None else self._store.converted(array, "vectors")
        if not self._index.is_trained:
            try:
                self._index.train(array)
            except RuntimeError as exc:
                raise ValueError(
                    f"factory {self._config.factory!r} needs training and the {len(array)} "
                    f"vectors given to add() are not enough ({_faiss_message(exc)}); "
                    "call train() with a larger sample first"
                ) from exc
        self._index.add(array)
        if stored is not None:
            assert self._store is not None
            self._store.append(stored)
        self._ids.extend(ids)
        self._id_set.update(ids)

    # -- searching --------------------------------------------------------------------------

    def search(
        self, queries: np.ndarray, k: int, rerank: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """FAISS search: ``(scores (Q, k) float32, labels (Q, k) int64)``, ``-1`` labels pad.

        With re-ranking the scores are exact (see ``IndexConfig``), best first. ``rerank``
        overrides ``config.rerank`` for this call (``0``: FAISS's own top-k, no re-ranking); a
        positive value needs an index built with ``rerank`` (one that stores its vectors).
        """
        array = _as_matrix(queries, self.dim, "queries")
        k = _check_k(k)
        if rerank is None:
            rerank = self._config.rerank or 0
        elif isinstance(rerank, bool) or not isinstance(rerank, int) or rerank < 0:
            raise ValueError(f"rerank must be a non-negative int or None, got {rerank!r}")
        if rerank and self._store is None:
            raise ValueError(
                f"rerank={rerank}: this index keeps no vectors to re-rank from; "
                "build it with IndexConfig(rerank=...)"
            )
        if not self._index.is_trained:
            raise ValueError(f"factory {self._config.factory!r} is untrained; call train() first")
        if not rerank:
            return self._index.search(array, k)
        _, candidates = self._index.search(array, max(rerank, k))
        return self._rerank(array, candidates, k)

    def _rerank(
        self, queries: np.ndarray, candidates: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The best ``k`` of each query's ``candidates`` (``(Q, k')`` labels, ``-1`` = none) by
        the exact score ``<q, x>`` (``ip``) or ``||q - x||^2`` (``l2``) with the stored ``x``.

        Queries go in chunks so that the gathered ``(chunk, k', dim)`` rows stay within
        ``RERANK_CHUNK_BYTES``; from a memory map only those rows are read.
        """
        assert self._store is not None
        vectors = self._store.array
        ip = self._config.metric == "ip"
        n_queries, depth = candidates.shape
        scores = np.full((n_queries, k), -_FLT_MAX if ip else _FLT_MAX, dtype=np.float32)
        labels = np.full((n_queries, k), -1, dtype=np.int64)
        chunk = max(1, RERANK_CHUNK_BYTES // (depth * self.dim * 4))
        for start in range(0, n_queries, chunk):
            block = candidates[start : start + chunk]
            found = block >= 0
            rows = np.take(vectors, np.where(found, block, 0).ravel(), axis=0)
            rows = rows.astype(np.float32, copy=False).reshape(*block.shape, self.dim)
            query = queries[start : start + chunk]
            if ip:
                exact = np.matmul(rows, query[:, :, None])[..., 0]
            else:
                rows -= query[:, None, :]
                exact = np.einsum("qkd,qkd->qk", rows, rows)
            # Sort key: ascending, missing candidates last.
            key = np.where(found, -exact if ip else exact, np.inf)
            order = np.argsort(key, axis=1, kind="stable")[:, :k]
            chosen = np.take_along_axis(block, order, axis=1)
            keep = chosen >= 0
            scores[start : start + chunk] = np.where(
                keep, np.take_along_axis(exact, order, axis=1), scores[start : start + chunk]
            )
            labels[start : start + chunk] = np.where(keep, chosen, -1)
        return scores, labels

    def search_ids(
        self, queries: np.ndarray, k: int, rerank: int | None = None
    ) -> tuple[np.ndarray, list[list[str]]]:
        """Like ``search`` but labels become example ids; padding (``-1``) is dropped.

        ``scores`` keeps FAISS's padded ``(Q, k)`` shape; row ``i`` of it lines up with the
        first ``len(ids[i])`` entries.
        """
        scores, labels = self.search(queries, k, rerank)
        id_list = self._ids
        return scores, [[id_list[label] for label in row if label >= 0] for row in labels.tolist()]

    # -- persistence ------------------------------------------------------------------------

    def save(
        self, directory: str | os.PathLike[str], meta: Mapping[str, Any] | None = None
    ) -> Path:
        """Write ``index.faiss`` + ``index.json`` (+ ``vectors.npy`` with ``rerank``) under
        ``directory``; returns the directory.

        ``meta`` (JSON-serialisable) replaces the stored metadata when given. The index is
        serialised before any file is touched, every file is written to a temporary and
        replaced atomically, and all renames wait until every file is written, so a failure
        leaves the previous save intact; the sha256s in the sidecar catch the one remaining
        window (a crash between the renames) at load time. The re-rank vectors are streamed
        to ``vectors.npy`` (a memory-mapped store is never read into RAM whole); saving a
        loaded index back onto its own directory is safe (the map keeps the old file).
        """
        directory = Path(directory)
        new_meta = dict(meta) if meta is not None else self._meta
        try:
            json.dumps(new_meta, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"index meta must be JSON-serialisable: {exc}") from exc
        blob = faiss.serialize_index(self._index)
        sidecar: dict[str, Any] = {
            "format": FORMAT_VERSION,
            "dim": self.dim,
            "ntotal": self.ntotal,
            "config": self._config.to_dict(),
            "sha256": hashlib.sha256(blob).hexdigest(),
            "meta": new_meta,
        }
        with contextlib.ExitStack() as renames:
            # Contexts exit in reverse: the sidecar is renamed first, index.faiss last.
            index_handle = renames.enter_context(atomic_open(directory / INDEX_FILE, "wb"))
            handles = [index_handle]
            index_handle.write(memoryview(blob))
            if self._store is not None:
                vectors_handle = renames.enter_context(atomic_open(directory / VECTORS_FILE, "wb"))
                handles.append(vectors_handle)
                array = self._store.array
                sidecar["vectors"] = {
                    "file": VECTORS_FILE,
                    "dtype": str(array.dtype),
                    "shape": list(array.shape),
                    "sha256": write_npy(vectors_handle, array),
                }
            sidecar["ids"] = self._ids
            sidecar_handle = renames.enter_context(atomic_open(directory / SIDECAR_FILE, "w"))
            handles.append(sidecar_handle)
            sidecar_handle.write(json.dumps(sidecar, indent=1, allow_nan=False) + "\n")
            # Make every temporary durable before any rename, so the renames follow each other
            # with nothing slow in between.
            for handle in handles:
                handle.flush()
                os.fsync(handle.fileno())
        self._meta = new_meta
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> VectorIndex:
        """Load a directory written by ``save``; every inconsistency is an ``IndexFileError``."""
        directory = Path(directory)
        sidecar_path, index_path = directory / SIDECAR_FILE, directory / INDEX_FILE
        sidecar = _read_sidecar(sidecar_path)
        config, ids, meta = sidecar["config"], sidecar["ids"], sidecar["meta"]
        if not index_path.is_file():
            raise IndexFileError(index_path, "missing (the sidecar exists but the index does not)")
        if sha256_file(index_path) != sidecar["sha256"]:
            raise IndexFileError(
                index_path,
                f"content does not match the sha256 recorded in {sidecar_path.name} "
                "(an interrupted save or a file from another index)",
            )
        try:
            index = faiss.read_index(str(index_path))
        except RuntimeError as exc:
            raise IndexFileError(index_path, f"not a FAISS index: {_faiss_message(exc)}") from exc
        for name, stored, actual in (
            ("dim", sidecar["dim"], int(index.d)),
            ("ntotal", sidecar["ntotal"], int(index.ntotal)),
            ("metric", METRICS[config.metric], int(index.metric_type)),
        ):
            if stored != actual:
                raise IndexFileError(
                    sidecar_path, f"{name} is {stored} but {index_path.name} has {actual}"
                )
        store = _load_vectors(directory, sidecar, config)
        loaded = cls.__new__(cls)
        loaded._config = config
        try:
            loaded._init(index, ids, meta, store)
        except ValueError as exc:
            raise IndexFileError(sidecar_path, str(exc)) from exc
        return loaded


def _load_vectors(
    directory: Path, sidecar: Mapping[str, Any], config: IndexConfig
) -> VectorStore | None:
    """The re-rank vectors of a saved index as a read-only memory map (None without rerank),
    checked against the sidecar (sha256, dtype, shape)."""
    sidecar_path = directory / SIDECAR_FILE
    entry = sidecar.get("vectors")
    if config.rerank is None:
        if entry is not None:
            raise IndexFileError(sidecar_path, "has a 'vectors' entry but its config has no rerank")
        return None
    if not isinstance(entry, dict) or entry.get("file") != VECTORS_FILE:
        raise IndexFileError(
            sidecar_path,
            f"config has rerank={config.rerank} but no 'vectors' entry naming {VECTORS_FILE} "
            "(re-ranking needs the stored vectors)",
        )
    path = directory / VECTORS_FILE
    if not path.is_file():
        raise IndexFileError(
            path, f"missing (config has rerank={config.rerank}, which needs the stored vectors)"
        )
    if sha256_file(path) != entry.get("sha256"):
        raise IndexFileError(
            path,
            f"content does not match the sha256 recorded in {SIDECAR_FILE} "
            "(an interrupted save or a file from another index)",
        )
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise IndexFileError(path, f"not a .npy array: {exc}") from exc
    expected = (sidecar["ntotal"], sidecar["dim"])
    if array.ndim != 2 or tuple(array.shape) != expected:
        raise IndexFileError(path, f"shape {array.shape}, expected {expected} (ntotal, dim)")
    if str(array.dtype) != config.rerank_dtype:
        raise IndexFileError(path, f"dtype {array.dtype}, but the config has {config.rerank_dtype}")
    return VectorStore.mapped(path, array)


def _read_sidecar(path: Path) -> dict[str, Any]:
    """The parsed, validated sidecar; ``config`` becomes an ``IndexConfig``."""
    if not path.is_file():
        raise IndexFileError(path, "missing; not a saved VectorIndex directory")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IndexFileError(path, f"not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise IndexFileError(path, "expected a JSON object")
    if data.get("format") != FORMAT_VERSION:
        raise IndexFileError(path, f"format {data.get('format')!r}, expected {FORMAT_VERSION}")
    required = ("dim", "ntotal", "config", "sha256", "meta", "ids")
    missing = [key for key in required if key not in data]
    if missing:
        raise IndexFileError(path, f"missing keys {missing}")
    try:
        data["config"] = IndexConfig.from_dict(data["config"])
    except (TypeError, ValueError) as exc:
        raise IndexFileError(path, f"bad config: {exc}") from exc
    ids = data["ids"]
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise IndexFileError(path, "'ids' must be a list of strings")
    if len(ids) != data["ntotal"]:
        raise IndexFileError(path, f"{len(ids)} ids but ntotal is {data['ntotal']}")
    if len(set(ids)) != len(ids):
        raise IndexFileError(path, "'ids' contains duplicates")
    if not isinstance(data["meta"], dict):
        raise IndexFileError(path, "'meta' must be a JSON object")
    return data


# Pools up to this size get a trial training run in ``check_factory`` (a second or so at most).
TRIAL_TRAIN_MAX_VECTORS = 10_000


def check_factory(dim: int, config: IndexConfig, n_vectors: int | None = None) -> None:
    """Raise ``ValueError`` (FAISS's reason, on one line) unless ``config`` can index
    ``n_vectors`` vectors of dimension ``dim``; run it before computing any vectors.

    The index is built on ``dim``; one that needs training (IVF, PQ, PCA) is also trained on
    ``n_vectors`` random unit vectors when there are at most ``TRIAL_TRAIN_MAX_VECTORS``, which
    catches too few points for the clusters or codebooks.

    Example::

        check_factory(512, IndexConfig("IVF1024,Flat"), n_vectors=2000)  # ValueError: ... (2000)
    """
    index = VectorIndex(dim, config)
    if index.is_trained or n_vectors is None or not 0 < n_vectors <= TRIAL_TRAIN_MAX_VECTORS:
        return
    sample = np.random.default_rng(0).standard_normal((n_vectors, dim)).astype(np.float32)
    sample /= np.linalg.norm(sample, axis=1, keepdims=True)
    index.train(sample)


__all__ = [
    "INDEX_FILE",
    "SIDECAR_FILE",
    "VECTORS_FILE",
    "IndexConfig",
    "IndexFileError",
    "VectorIndex",
    "check_factory",
]

"""An on-disk embedding cache: a second run embeds nothing it embedded before.

Entries are keyed by (embedder fingerprint, modality, content key). The content key of an
image is the SHA-1 of its file bytes and of a text the SHA-1 of the string (of a joint
(images, text) pair, modality ``joint``: the SHA-1 of its images' keys in order and its
text, ``joint_key``), so a regenerated
dataset whose example ids stay the same but whose content changed is never served stale
vectors, and identical content is embedded once.

Promises, for any number of processes (and threads) using one cache directory at once:

* every key returns its own vector, bit for bit the row the embedder returned (as float32);
* each batch of new entries is atomic: a reader sees all of it or none of it, never a
  half-written vector nor a key paired with another entry's vector; a process killed
  mid-write leaves the entries committed before it;
* nothing a writer stored is lost to another writer. Two writers that embed the same key at
  once store it once: the second finds it under the write lock and returns the stored vector,
  so every process agrees on one vector per key.

Design. A SQLite database (``embeddings.sqlite``, WAL mode) is the source of truth: which
(fingerprint, modality) stores exist with their dimension and row count, and which key is in
which row. Each store's vectors are an append-only file of float32 rows
(``vectors-<store id>.f32``), read as a memory map. A writer, inside one SQLite write
transaction (one writer at a time; the others wait up to ``BUSY_TIMEOUT_S``), re-reads the
keys stored since its last look, appends rows for the keys still missing past the committed
row count, ``fsync``s them, then inserts their keys and the new row count and commits. So a
committed key always points at complete, durable rows; rows below the committed count are
never written again (readers map only those); rows past it left by a killed writer are
overwritten by the next one. Readers never wait: each lookup reads a committed snapshot of
the keys added since its last one, and then only dictionary lookups and one gather from the
memory map, about as fast as the single-writer ``vectors.npy`` store this replaced
(``benchmarks/bench_embed_cache.py``). Vectors stay out of SQLite because a version that kept
them there, one blob row per key, was 4-6x slower on a warm 20k-key lookup. Embedding happens
outside any transaction, so the write lock is held only while a batch is stored.

WAL needs a local file system (its shared-memory index does not work over NFS): give every
machine its own cache directory. A directory in the old format (``<fingerprint>/<modality>/``
with ``vectors.npy`` and ``keys.json``) is ignored and its entries are embedded again: a store
written by two processes at once may pair keys with other entries' vectors, and nothing in it
tells which, so importing it could carry wrong vectors forward. Those folders can be deleted.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from drum.data.example import Example
from drum.data.images import ImageInput, image_key
from drum.embed.base import Embedder, JointEmbedder

DATABASE_NAME = "embeddings.sqlite"
# How long a writer waits for another's transaction before failing: storing a batch takes
# milliseconds, so only a stuck process (or a very slow disk) makes anyone wait this long.
BUSY_TIMEOUT_S = 120.0
_DTYPE = np.dtype("<f4")

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS stores (
        id INTEGER PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        modality TEXT NOT NULL,
        dim INTEGER NOT NULL,
        rows INTEGER NOT NULL,  -- committed rows of vectors-<id>.f32
        UNIQUE (fingerprint, modality)
    )""",
    """CREATE TABLE IF NOT EXISTS keys (
        store INTEGER NOT NULL REFERENCES stores (id),
        row INTEGER NOT NULL,
        key TEXT NOT NULL,
        PRIMARY KEY (store, row),
        UNIQUE (store, key)
    ) WITHOUT ROWID""",
)


def text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def joint_key(images: Sequence[ImageInput], text: str) -> str:
    """The content key of an (images, text) pair: its images' keys in order, then its text."""
    parts = [image_key(image) for image in images] + [text_key(text)]
    return hashlib.sha1("|".join(parts).encode("ascii")).hexdigest()


class _Store:
    """This object's view of one (fingerprint, modality) store: the first ``rows`` rows."""

    def __init__(self, store_id: int, dim: int, path: Path) -> None:
        self.id, self.dim, self.path = store_id, dim, path
        self.rows = 0
        self.row_of: dict[str, int] = {}
        self._mapped = np.zeros((0, dim), dtype=_DTYPE)

    def gather(self, rows: list[int]) -> np.ndarray:
        if len(self._mapped) < self.rows:  # committed rows are complete and never rewritten
            self._mapped = np.memmap(self.path, dtype=_DTYPE, mode="r", shape=(self.rows, self.dim))
        return np.asarray(self._mapped[rows], dtype=np.float32)


class EmbeddingCache:
    """Cache in front of an embedder's ``embed_images`` / ``embed_texts``, safe to share.

    ``hits`` and ``misses`` count this object's lookups (a key repeated within one call is one
    miss). Any number of processes may use one ``directory`` at once (see the module
    docstring for what is promised).

    Example::

        cache = EmbeddingCache("runs/cache")
        vectors = cache.embed_images(embedder, [example.image for example in pool])
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.hits = 0
        self.misses = 0
        self._connection: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._stores: dict[tuple[str, str], _Store] = {}

    def __getstate__(self) -> dict[str, Any]:
        # A connection and a lock cannot travel to another process: it opens its own.
        return {**self.__dict__, "_connection": None, "_lock": None, "_stores": {}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _lock=threading.Lock())

    def _db(self) -> sqlite3.Connection:
        # A connection inherited through fork must not be used by the child (both would drive
        # one file handle's locks): the child opens its own.
        if self._connection is None or self._pid != os.getpid():
            self.directory.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(
                self.directory / DATABASE_NAME,
                timeout=BUSY_TIMEOUT_S,
                isolation_level=None,  # transactions are explicit (_transaction)
                check_same_thread=False,  # this object's threads are serialized by _lock
            )
            # WAL: readers neither block writers nor see uncommitted rows. NORMAL syncs at
            # checkpoints only: a power cut may lose the last commits (their keys are embedded
            # again), never corrupt the database or point a key at missing rows.
            _enable_wal(db)
            db.execute("PRAGMA synchronous=NORMAL")
            # Created once; checked first so that opening never waits for a writer's lock.
            tables = "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('stores', 'keys')"
            if db.execute(tables).fetchone()[0] < len(_SCHEMA):
                with _transaction(db, "IMMEDIATE"):
                    for statement in _SCHEMA:
                        db.execute(statement)
            self._connection, self._pid, self._stores = db, os.getpid(), {}
        return self._connection

    def _refresh(self, db: sqlite3.Connection, fingerprint: str, modality: str) -> _Store | None:
        """Catch up with the keys committed since this object last looked (inside a
        transaction); ``None`` while nothing is stored under (fingerprint, modality)."""
        row = db.execute(
            "SELECT id, dim, rows FROM stores WHERE fingerprint = ? AND modality = ?",
            (fingerprint, modality),
        ).fetchone()
        if row is None:
            return None
        store_id, dim, rows = row
        store = self._stores.get((fingerprint, modality))
        if store is None:
            path = self.directory / f"vectors-{store_id}.f32"
            store = self._stores[fingerprint, modality] = _Store(store_id, dim, path)
        if rows > store.rows:
            store.row_of.update(
                db.execute(
                    "SELECT key, row FROM keys WHERE store = ? AND row >= ?", (store_id, store.rows)
                )
            )
            store.rows = rows
        return store

    def _lookup(
        self,
        fingerprint: str,
        modality: str,
        items: Sequence,
        keys: list[str],
        compute: Callable[[list], np.ndarray],
    ) -> np.ndarray:
        if not keys:
            return compute([])
        with self._lock:
            db = self._db()
            with _transaction(db, "DEFERRED"):
                store = self._refresh(db, fingerprint, modality)
            known = {} if store is None else store.row_of
            missing = [key for key in dict.fromkeys(keys) if key not in known]
            self.misses += len(missing)
            self.hits += len(keys) - len(missing)
        if missing:
            first_index = {key: index for index, key in reversed(list(enumerate(keys)))}
            computed = compute([items[first_index[key]] for key in missing])
            with self._lock:
                store = self._store_new(fingerprint, modality, missing, computed)
        with self._lock:
            return store.gather([store.row_of[key] for key in keys])

    def _store_new(
        self, fingerprint: str, modality: str, keys: list[str], vectors: np.ndarray
    ) -> _Store:
        """Store ``vectors`` under those ``keys`` that nobody stored meanwhile, atomically."""
        vectors = np.ascontiguousarray(vectors, dtype=_DTYPE)
        if vectors.ndim != 2 or len(vectors) != len(keys):
            raise ValueError(
                f"the embedder returned shape {vectors.shape} for {len(keys)} {modality}s"
            )
        db = self._db()
        try:
            with _transaction(db, "IMMEDIATE"):  # the write lock: one writer at a time
                store = self._refresh(db, fingerprint, modality)
                if store is None:
                    db.execute(
                        "INSERT INTO stores (fingerprint, modality, dim, rows) VALUES (?, ?, ?, 0)",
                        (fingerprint, modality, vectors.shape[1]),
                    )
                    store = self._refresh(db, fingerprint, modality)
                if store.dim != vectors.shape[1]:
                    raise ValueError(
                        f"{fingerprint!r} {modality} vectors have dim {vectors.shape[1]}, but "
                        f"the cache in {self.directory} holds dim {store.dim} for it"
                    )
                new = [index for index, key in enumerate(keys) if key not in store.row_of]
                if not new:  # another writer stored all of them while we embedded
                    return store
                start = store.rows
                _write_durably(store.path, start * store.dim * _DTYPE.itemsize, vectors[new])
                db.executemany(
                    "INSERT INTO keys (store, row, key) VALUES (?, ?, ?)",
                    [(store.id, start + j, keys[index]) for j, index in enumerate(new)],
                )
                db.execute("UPDATE stores SET rows = ? WHERE id = ?", (start + len(new), store.id))
        except BaseException:
            # A store created in the rolled-back transaction does not exist (its id may go to
            # another fingerprint): forget this object's view, the next lookup re-reads it.
            self._stores.pop((fingerprint, modality), None)
            raise
        # Committed: now these rows are this object's view too.
        store.row_of.update((keys[index], start + j) for j, index in enumerate(new))
        store.rows = start + len(new)
        return store

    def missing(self, fingerprint: str, modality: str, keys: Sequence[str]) -> list[str]:
        """The distinct ``keys`` not stored under ``(fingerprint, modality)``, in first-seen
        order: the ones a lookup would embed now (``drum.embed.sharded`` splits them across
        ranks). Counts nothing in ``hits`` / ``misses``."""
        with self._lock:
            db = self._db()
            with _transaction(db, "DEFERRED"):
                store = self._refresh(db, fingerprint, modality)
            known = {} if store is None else store.row_of
            return [key for key in dict.fromkeys(keys) if key not in known]

    def store(
        self, fingerprint: str, modality: str, keys: Sequence[str], vectors: np.ndarray
    ) -> None:
        """Store ``vectors`` (row ``i`` for ``keys[i]``, distinct keys) computed elsewhere, as a
        lookup that embedded them would have: one atomic batch, rows in ``keys`` order, keys
        stored meanwhile by another writer kept as they are."""
        if len(set(keys)) != len(keys):
            raise ValueError("EmbeddingCache.store: keys must be distinct")
        if not keys:
            return
        with self._lock:
            self._store_new(fingerprint, modality, list(keys), vectors)

    def embed_images(
        self, embedder: Embedder, images: Sequence[ImageInput], progress: bool = False
    ) -> np.ndarray:
        keys = [image_key(image) for image in images]
        return self._lookup(
            embedder.fingerprint,
            "image",
            images,
            keys,
            lambda batch: embedder.embed_images(batch, progress=progress),
        )

    def embed_texts(
        self, embedder: Embedder, texts: Sequence[str], progress: bool = False
    ) -> np.ndarray:
        keys = [text_key(text) for text in texts]
        return self._lookup(
            embedder.fingerprint,
            "text",
            texts,
            keys,
            lambda batch: embedder.embed_texts(batch, progress=progress),
        )

    def embed_examples(
        self, embedder: JointEmbedder, examples: Sequence[Example], progress: bool = False
    ) -> np.ndarray:
        """``embedder.embed_examples`` through the cache: each distinct (images, text) pair
        embedded once, ever (modality ``joint``)."""
        keys = [joint_key(example.images, example.text) for example in examples]
        return self._lookup(
            embedder.fingerprint,
            "joint",
            examples,
            keys,
            lambda batch: embedder.embed_examples(batch, progress=progress),
        )


def _enable_wal(db: sqlite3.Connection) -> None:
    """Switch a new database to WAL (a no-op once it is). The switch needs every other
    connection idle and fails at once, without the busy timeout, when processes open a new
    cache together: retry it within that timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


@contextmanager
def _transaction(db: sqlite3.Connection, kind: str) -> Iterator[None]:
    db.execute(f"BEGIN {kind}")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _write_durably(path: Path, offset: int, rows: np.ndarray) -> None:
    """Write ``rows`` at byte ``offset`` of ``path`` and fsync before the keys are committed."""
    data = memoryview(rows.tobytes())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o666)
    try:
        while data:
            written = os.pwrite(fd, data, offset)
            data, offset = data[written:], offset + written
        os.fsync(fd)
    finally:
        os.close(fd)

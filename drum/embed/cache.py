"""An on-disk embedding cache: a second run embeds nothing it embedded before.

Entries are keyed by (embedder fingerprint, modality, content key). The content key of an
image is the SHA-1 of its file bytes and of a text the SHA-1 of the string, so a regenerated
dataset whose example ids stay the same but whose content changed is never served stale
vectors, and identical content is embedded once. Each (fingerprint, modality) store is a
``vectors.npy`` (read back as a memory map) with a ``keys.json`` sidecar, both replaced
atomically, vectors first, so a crash leaves either the old or the new store.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from drum.data.images import ImageInput, image_key
from drum.embed.base import Embedder
from drum.utils.io import atomic_open, atomic_write_text


def text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class _Store:
    """One (fingerprint, modality) store: keys -> rows of an ``(N, dim)`` float32 array."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.vectors_path = directory / "vectors.npy"
        self.keys_path = directory / "keys.json"
        self.keys: list[str] = []
        self.vectors = np.zeros((0, 0), dtype=np.float32)
        if self.keys_path.is_file() and self.vectors_path.is_file():
            keys = json.loads(self.keys_path.read_text(encoding="utf-8"))
            vectors = np.load(self.vectors_path, mmap_mode="r")
            # vectors.npy is replaced before keys.json: more rows than keys means a crash in
            # between, and the first len(keys) rows are still the ones the keys describe.
            if len(vectors) >= len(keys):
                self.keys, self.vectors = keys, vectors[: len(keys)]
        self.row_of = {key: row for row, key in enumerate(self.keys)}

    def append(self, keys: list[str], vectors: np.ndarray) -> None:
        merged = vectors if len(self.keys) == 0 else np.concatenate([self.vectors, vectors])
        with atomic_open(self.vectors_path, "wb") as handle:
            np.save(handle, np.ascontiguousarray(merged, dtype=np.float32))
        atomic_write_text(self.keys_path, json.dumps(self.keys + keys))
        self.keys = self.keys + keys
        self.vectors = np.load(self.vectors_path, mmap_mode="r")
        self.row_of.update({key: len(self.row_of) + i for i, key in enumerate(keys)})


class EmbeddingCache:
    """Cache in front of an embedder's ``embed_images`` / ``embed_texts``.

    Example::

        cache = EmbeddingCache("runs/cache")
        vectors = cache.embed_images(embedder, [example.image for example in pool])
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._stores: dict[tuple[str, str], _Store] = {}
        self.hits = 0
        self.misses = 0

    def _store(self, fingerprint: str, modality: str) -> _Store:
        key = (fingerprint, modality)
        if key not in self._stores:
            self._stores[key] = _Store(self.directory / fingerprint / modality)
        return self._stores[key]

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
        store = self._store(fingerprint, modality)
        missing: dict[str, int] = {}
        for index, key in enumerate(keys):
            if key not in store.row_of and key not in missing:
                missing[key] = index
        self.misses += len(missing)
        self.hits += len(keys) - len(missing)
        if missing:
            new_vectors = compute([items[index] for index in missing.values()])
            store.append(list(missing), new_vectors)
        return np.asarray(store.vectors[[store.row_of[key] for key in keys]], dtype=np.float32)

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

"""Embedding a dataset into the cache with N processes (``torchrun`` / ``accelerate launch``).

With one process this is ``ExampleEmbeddings.compute`` through the cache, as always. With N:

1. every rank lists the distinct image and text keys the cache lacks (the ones one process
   would embed, in the same first-seen order), then all wait (``barrier``) so nobody reads
   the cache while rank 0 already writes it;
2. the missing items are cut into the embedder's own batches (``batch_size`` default of
   ``embed_images`` / ``embed_texts``) and the *batches* are split contiguously across ranks
   (``drum.utils.distributed.shard``), so each rank runs exactly the batches one process
   would have run: its vectors are bit for bit the single-process ones;
3. each rank writes its part, ``<cache>.parts/rank-<r>-of-<N>.<modality>.safetensors``
   (atomically; its metadata names the embedder fingerprint and a digest of its keys), and
   a part already there for the same keys is kept, not recomputed: parts are the resume unit;
4. rank 0 concatenates the parts in rank order (= the missing keys' order) and stores them
   as one batch per modality, images first, as the single-process lookup does, so the cache
   directory ends up as one process would have written it; then it deletes the parts.

A rank killed mid-run leaves the parts of the ranks that finished; rerunning the same command
(same N) embeds only the missing parts. A rerun with another N ignores old parts (their names
say which N) and deletes them once merged.
"""

from __future__ import annotations

import hashlib
import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from drum.data.example import Example
from drum.data.images import image_key
from drum.embed.base import Embedder
from drum.embed.cache import EmbeddingCache, text_key
from drum.embed.example_embeddings import ExampleEmbeddings
from drum.utils.distributed import DistContext, parts_dir, read_parts, shard_bounds
from drum.utils.io import atomic_write_bytes, remove_directory

MODALITIES = ("image", "text")


@dataclass(frozen=True)
class EmbedStats:
    """What one run did (all ranks together), counted as ``EmbeddingCache`` counts: lookups
    served from the cache, and distinct keys embedded now."""

    cached: int
    embedded: int
    reused_parts: int  # this rank's parts kept from an interrupted run


def _keys_digest(fingerprint: str, keys: Sequence[str]) -> str:
    digest = hashlib.sha256(fingerprint.encode())
    for key in keys:
        digest.update(b"\n" + key.encode())
    return digest.hexdigest()


def _default_batch_size(method: Callable[..., np.ndarray]) -> int:
    return int(inspect.signature(method).parameters["batch_size"].default)


def _rank_keys(keys: Sequence[str], batch_size: int, rank: int, world_size: int) -> list[str]:
    """Rank ``rank``'s keys: a contiguous run of whole ``batch_size`` batches of ``keys``."""
    lo, hi = shard_bounds(math.ceil(len(keys) / batch_size), rank, world_size)
    return list(keys[lo * batch_size : hi * batch_size])


def _read_part(path: Path, digest: str, dim: int | None) -> np.ndarray | None:
    """The part's vectors when it holds exactly the expected keys, else None."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="np") as handle:
            if (handle.metadata() or {}).get("keys_digest") != digest:
                return None
            vectors = handle.get_tensor("vectors")
    except (OSError, ValueError, SafetensorError):  # a foreign or damaged file: recompute it
        return None
    if dim is not None and vectors.shape[1] != dim:
        return None
    return vectors


def _write_part(path: Path, vectors: np.ndarray, digest: str, fingerprint: str) -> None:
    from safetensors.numpy import save

    data = save(
        {"vectors": np.ascontiguousarray(vectors, dtype=np.float32)},
        metadata={"keys_digest": digest, "fingerprint": fingerprint},
    )
    atomic_write_bytes(path, data)


def embed_dataset(
    examples: Sequence[Example],
    embedder: Embedder,
    cache: EmbeddingCache,
    context: DistContext,
    progress: bool = False,
) -> EmbedStats:
    """Embed every image and text of ``examples`` into ``cache``, split across the ranks of
    ``context`` (see the module docstring); every rank returns the same counts."""
    images = [path for example in examples for path in example.images]
    texts = [example.text for example in examples]
    if not context.distributed:
        ExampleEmbeddings.compute(examples, embedder, cache, progress=progress)
        return EmbedStats(cache.hits, cache.misses, 0)

    fingerprint = embedder.fingerprint
    items = {"image": images, "text": texts}
    key_of = {"image": image_key, "text": text_key}
    compute = {"image": embedder.embed_images, "text": embedder.embed_texts}
    cached = embedded = 0  # counted as EmbeddingCache counts hits and misses
    missing: dict[str, list[str]] = {}
    for modality in MODALITIES:
        keys = [key_of[modality](item) for item in items[modality]]
        missing[modality] = cache.missing(fingerprint, modality, keys)
        embedded += len(missing[modality])
        cached += len(keys) - len(missing[modality])
    context.barrier()  # everyone has read the cache before rank 0 writes to it

    out = cache.directory
    batch = {modality: _default_batch_size(compute[modality]) for modality in MODALITIES}
    reused = 0
    for modality in MODALITIES:
        first: dict[str, object] = {}
        for item in items[modality]:
            first.setdefault(key_of[modality](item), item)
        own = _rank_keys(missing[modality], batch[modality], context.rank, context.world_size)
        path = context.part_path(out, f"{modality}.safetensors")
        digest = _keys_digest(fingerprint, own)
        if _read_part(path, digest, embedder.dim) is not None:
            reused += 1
            continue
        vectors = compute[modality]([first[key] for key in own], progress=progress)
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(own), embedder.dim)
        _write_part(path, vectors, digest, fingerprint)
    context.barrier()  # every part is written

    if context.is_main:
        for modality in MODALITIES:
            keys = missing[modality]

            def read(
                rank: int, path: Path, keys: list[str] = keys, modality: str = modality
            ) -> np.ndarray:
                own = _rank_keys(keys, batch[modality], rank, context.world_size)
                vectors = _read_part(path, _keys_digest(fingerprint, own), embedder.dim)
                if vectors is None:
                    raise RuntimeError(f"{path}: rank {rank}'s part is missing or stale")
                return vectors

            ext = f"{modality}.safetensors"
            blocks = read_parts(out, context.world_size, ext, read)
            if keys:
                cache.store(fingerprint, modality, keys, np.concatenate(blocks))
        remove_directory(parts_dir(out))
    context.barrier()  # the cache is complete for every rank
    return EmbedStats(cached, embedded, reused)

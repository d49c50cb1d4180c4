"""``EmbeddingCache.missing`` / ``store``: what sharded embedding merges through."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from drum.embed.cache import EmbeddingCache, text_key
from drum.testing import FakeEmbedder


def test_missing_lists_unstored_keys_once_in_first_seen_order(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    embedder = FakeEmbedder(dim=4)
    cache.embed_texts(embedder, ["b"])
    keys = [text_key(t) for t in ["c", "b", "a", "c"]]
    assert cache.missing(embedder.fingerprint, "text", keys) == [keys[0], keys[2]]
    assert (cache.hits, cache.misses) == (0, 1)  # missing() counts nothing


def test_stored_vectors_are_served_bit_for_bit(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    embedder = FakeEmbedder(dim=4)
    vectors = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    cache.store(embedder.fingerprint, "text", [text_key("x"), text_key("y")], vectors)
    again = EmbeddingCache(tmp_path)
    np.testing.assert_array_equal(again.embed_texts(embedder, ["y", "x"]), vectors[::-1])
    assert again.misses == 0
    with pytest.raises(ValueError, match="keys must be distinct"):
        cache.store(embedder.fingerprint, "text", ["k", "k"], vectors)


def test_a_damaged_part_is_recomputed_not_trusted(tmp_path: Path) -> None:
    from drum.embed.sharded import _keys_digest, _read_part, _write_part

    path = tmp_path / "rank-0-of-2.image.safetensors"
    digest = _keys_digest("fp", ["a", "b"])
    _write_part(path, np.ones((2, 4), dtype=np.float32), digest, "fp")
    assert _read_part(path, digest, 4) is not None
    assert _read_part(path, _keys_digest("fp", ["a"]), 4) is None  # other keys
    assert _read_part(path, digest, 8) is None  # other dim
    path.write_bytes(b"not a safetensors file")
    assert _read_part(path, digest, 4) is None

"""EmbeddingCache: a second run embeds nothing; changed content is re-embedded; crash-safe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from drum.embed.cache import EmbeddingCache
from drum.testing import FakeEmbedder


def _images(tmp_path: Path, n: int) -> list[Path]:
    paths = []
    for i in range(n):
        path = tmp_path / f"{i}.png"
        Image.new("RGB", (8, 8), (10 * i, 20, 30)).save(path)
        paths.append(path)
    return paths


def test_second_run_embeds_nothing(tmp_path: Path) -> None:
    images, texts = _images(tmp_path, 5), ["a cat", "a dog", "tea", "a cat", "bee"]
    embedder = FakeEmbedder()
    first = EmbeddingCache(tmp_path / "cache")
    image_vectors = first.embed_images(embedder, images)
    text_vectors = first.embed_texts(embedder, texts)
    assert (len(embedder.images_seen), len(embedder.texts_seen)) == (5, 4)  # "a cat" twice: once

    again = EmbeddingCache(tmp_path / "cache")  # a new process: reads from disk
    np.testing.assert_array_equal(again.embed_images(embedder, images), image_vectors)
    np.testing.assert_array_equal(again.embed_texts(embedder, texts), text_vectors)
    assert (len(embedder.images_seen), len(embedder.texts_seen)) == (5, 4)
    assert again.misses == 0 and again.hits == 10


def test_cached_vectors_equal_fresh_ones(tmp_path: Path) -> None:
    texts = ["one", "two", "three"]
    cache = EmbeddingCache(tmp_path)
    cache.embed_texts(FakeEmbedder(), texts[:2])
    np.testing.assert_allclose(
        cache.embed_texts(FakeEmbedder(), texts), FakeEmbedder().embed_texts(texts)
    )


def test_changed_image_content_and_new_model_are_misses(tmp_path: Path) -> None:
    (path,) = _images(tmp_path, 1)
    embedder = FakeEmbedder()
    cache = EmbeddingCache(tmp_path / "cache")
    cache.embed_images(embedder, [path])
    Image.new("RGB", (8, 8), (200, 0, 0)).save(path)  # same path, new pixels
    cache.embed_images(embedder, [path])
    assert len(embedder.images_seen) == 2
    other = FakeEmbedder(fingerprint="fake-v2")
    cache.embed_images(other, [path])
    assert len(other.images_seen) == 1


def test_crash_between_vectors_and_keys_keeps_the_old_entries(tmp_path: Path) -> None:
    embedder = FakeEmbedder()
    cache = EmbeddingCache(tmp_path)
    cache.embed_texts(embedder, ["alpha", "beta"])
    store = tmp_path / embedder.fingerprint / "text"
    vectors = np.load(store / "vectors.npy")
    np.save(store / "vectors.npy", np.concatenate([vectors, vectors[:1]]))  # keys.json not updated
    fresh = EmbeddingCache(tmp_path)
    fresh.embed_texts(embedder, ["alpha", "beta", "gamma"])
    assert fresh.hits == 2 and fresh.misses == 1


def test_empty_input(tmp_path: Path) -> None:
    assert EmbeddingCache(tmp_path).embed_texts(FakeEmbedder(), []).shape == (0, 4)

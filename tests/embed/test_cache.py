"""EmbeddingCache: a second run embeds nothing; changed content is re-embedded; crash-safe;
vectors bit-identical to the embedder's. Concurrent processes: test_cache_concurrency.py."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from drum.embed.cache import EmbeddingCache, text_key
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


# A process killed while storing a batch: after writing part of its vectors, or after all of
# them and part of its keys (inside SQLite's transaction). ``cache`` has stored a batch before.
_KILL = """
import os, sys
import drum.embed.cache as module
from drum.embed.cache import EmbeddingCache, text_key
from drum.testing import FakeEmbedder

write = module._write_durably
def killed(path, offset, rows):
    if sys.argv[2] == "vectors":
        write(path, offset, rows[: len(rows) // 2])
        os._exit(3)
    write(path, offset, rows)
    cache._connection.set_progress_handler(lambda: os._exit(3), 1)
module._write_durably = killed
cache = EmbeddingCache(sys.argv[1])
cache.embed_texts(FakeEmbedder(), [f"new {i}" for i in range(50)])
"""


@pytest.mark.parametrize("killed_in", ["vectors", "keys"])
def test_writer_killed_mid_batch_leaves_the_committed_entries(
    tmp_path: Path, killed_in: str
) -> None:
    texts = ["alpha", "beta"] + [f"new {i}" for i in range(50)]
    EmbeddingCache(tmp_path).embed_texts(FakeEmbedder(), texts[:2])
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    done = subprocess.run([sys.executable, "-c", _KILL, str(tmp_path), killed_in], env=env)
    assert done.returncode == 3

    fresh, embedder = EmbeddingCache(tmp_path), FakeEmbedder()
    vectors = fresh.embed_texts(embedder, texts)
    assert fresh.hits == 2 and fresh.misses == 50  # none of the killed batch was committed
    np.testing.assert_array_equal(vectors, FakeEmbedder().embed_texts(texts))
    # The rows the killed writer left past the committed ones were overwritten, not read.
    again = EmbeddingCache(tmp_path).embed_texts(_Refuses(), texts)
    np.testing.assert_array_equal(again, vectors)


class _Refuses(FakeEmbedder):
    def embed_texts(
        self, texts: Sequence[str], batch_size: int = 256, progress: bool = False
    ) -> np.ndarray:
        raise AssertionError(f"embedded {texts}: expected every text cached")


def test_vectors_are_bit_identical_float32_and_writable(tmp_path: Path) -> None:
    class Float64(FakeEmbedder):  # an embedder returning float64: stored as float32, as before
        def embed_texts(
            self, texts: Sequence[str], batch_size: int = 256, progress: bool = False
        ) -> np.ndarray:
            return super().embed_texts(texts).astype(np.float64) / 3.0

    texts = [f"t{i}" for i in range(30)]
    expected = (FakeEmbedder().embed_texts(texts).astype(np.float64) / 3.0).astype(np.float32)
    cache = EmbeddingCache(tmp_path)
    for vectors in (
        cache.embed_texts(Float64(), texts),  # computed now
        cache.embed_texts(Float64(), texts[::-1])[::-1],  # same object
        EmbeddingCache(tmp_path).embed_texts(_Refuses(), texts),  # another object
        pickle.loads(pickle.dumps(cache)).embed_texts(_Refuses(), texts),  # another process's
    ):
        assert vectors.dtype == np.float32 and vectors.flags.writeable
        assert vectors.tobytes() == expected.tobytes()


def test_entries_stored_by_another_object_are_hits(tmp_path: Path) -> None:
    first, second = EmbeddingCache(tmp_path), EmbeddingCache(tmp_path)
    first.embed_texts(FakeEmbedder(), ["a"])
    second.embed_texts(FakeEmbedder(), ["a", "b", "c"])  # after `first` looked
    embedder = FakeEmbedder()
    first.embed_texts(embedder, ["c", "b", "a", "d"])
    assert embedder.texts_seen == ["d"] and (first.hits, first.misses) == (3, 2)


def test_another_dim_under_one_fingerprint_is_refused(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    cache.embed_texts(FakeEmbedder(dim=4), ["a"])
    with pytest.raises(ValueError, match="dim 6.*holds dim 4"):
        cache.embed_texts(FakeEmbedder(dim=6), ["b"])
    with pytest.raises(ValueError, match="dim 6.*holds dim 4"):
        EmbeddingCache(tmp_path).embed_texts(FakeEmbedder(dim=6), ["b"])
    embedder = FakeEmbedder(dim=4)
    EmbeddingCache(tmp_path).embed_texts(embedder, ["a", "b"])
    assert embedder.texts_seen == ["b"]  # nothing of the refused batches was stored


def test_old_format_store_is_ignored(tmp_path: Path) -> None:
    # The store before SQLite: keys.json + vectors.npy per (fingerprint, modality). One written
    # by two processes could pair keys with other entries' vectors: its entries are re-embedded.
    embedder = FakeEmbedder()
    old = tmp_path / embedder.fingerprint / "text"
    old.mkdir(parents=True)
    np.save(old / "vectors.npy", np.ones((2, 4), dtype=np.float32))
    (old / "keys.json").write_text(json.dumps([text_key("a"), text_key("b")]))
    vectors = EmbeddingCache(tmp_path).embed_texts(embedder, ["a", "b"])
    assert embedder.texts_seen == ["a", "b"]
    np.testing.assert_array_equal(vectors, FakeEmbedder().embed_texts(["a", "b"]))


def test_empty_input(tmp_path: Path) -> None:
    assert EmbeddingCache(tmp_path).embed_texts(FakeEmbedder(), []).shape == (0, 4)

"""``ExampleEmbeddings``: rows per example (the mean of a multi-image example's images), the
cache, and the package rule that embedding never imports retrieval."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from drum.data.example import Example
from drum.embed.cache import EmbeddingCache
from drum.embed.example_embeddings import ExampleEmbeddings
from drum.testing import FakeEmbedder
from tests.multi_image import multi_image_pool


def test_a_multi_image_example_is_the_normalised_mean_of_its_images(
    image_paths: list[Path], tmp_path: Path
) -> None:
    examples = multi_image_pool(image_paths)
    embedder = FakeEmbedder(dim=8)
    single = {p.name: embedder.embed_images([p])[0] for p in image_paths}
    embedder.images_seen.clear()
    cache = EmbeddingCache(tmp_path / "cache")
    embeddings = ExampleEmbeddings.compute(examples, embedder, cache)
    for example, row in zip(examples, embeddings.image, strict=True):
        vectors = [single[p.name] for p in example.images]
        if len(vectors) == 1:
            assert np.array_equal(row, vectors[0])  # bit for bit: no averaging path
        else:
            expected = np.mean(vectors, axis=0)
            np.testing.assert_allclose(row, expected / np.linalg.norm(expected), atol=1e-6)
        assert np.linalg.norm(row) == pytest.approx(1.0, abs=1e-6)
    # Through the cache every distinct image is embedded once, a second call none at all.
    assert sorted(Path(p).name for p in embedder.images_seen) == sorted(p.name for p in image_paths)
    again = ExampleEmbeddings.compute(examples, embedder, cache)
    assert len(embedder.images_seen) == len(image_paths)
    np.testing.assert_array_equal(again.image, embeddings.image)
    np.testing.assert_array_equal(ExampleEmbeddings.compute(examples, embedder).image, again.image)


def test_single_image_examples_embed_exactly_their_image(image_paths: list[Path]) -> None:
    examples = [Example(f"s{i}", (p,), f"t{i}", ("a",), "vqa") for i, p in enumerate(image_paths)]
    embedder = FakeEmbedder(dim=8)
    embeddings = ExampleEmbeddings.compute(examples, embedder)
    assert np.array_equal(embeddings.image, embedder.embed_images(image_paths))
    assert np.array_equal(embeddings.text, embedder.embed_texts([e.text for e in examples]))
    with pytest.raises(ValueError, match="has no image"):
        ExampleEmbeddings.compute([Example("none", (), "t", ("a",), "vqa")], embedder)


def test_drum_embed_does_not_import_drum_retrieve() -> None:
    """Embedding sits below retrieval in the pipeline: importing every ``drum.embed`` module
    in a fresh interpreter loads nothing of ``drum.retrieve``."""
    modules = sorted(
        f"drum.embed.{path.stem}"
        for path in (Path(__file__).parents[2] / "drum" / "embed").glob("*.py")
        if path.stem != "__init__"
    )
    assert "drum.embed.example_embeddings" in modules and "drum.embed.sharded" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.startswith('drum.retrieve')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"

"""Embedding throughput of the built-in embedder, and what the embedding cache saves.

The built-in CLIP architecture (random weights: speed does not depend on them) is saved and
loaded through ``HFDualEncoder``, the path every run takes. Rows: images/s and texts/s at a few
batch sizes, and a cold vs warm ``EmbeddingCache`` pass over the same pool (ratio side by side).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import report, timeit
from PIL import Image

from drum.builtin.embedder import BuiltinEmbedderConfig, build_clip
from drum.builtin.world.language import question_text, vocabulary
from drum.builtin.world.scene import render_scene, sample_scene
from drum.embed.cache import EmbeddingCache
from drum.embed.hf import HFDualEncoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer items (smoke run)")
    parser.add_argument("--n", type=int, default=2000, help="images and texts to embed")
    args = parser.parse_args()
    n = 200 if args.quick else args.n
    torch.set_num_threads(2)

    rng = np.random.default_rng(0)
    scenes = [sample_scene(rng) for _ in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        model, processor = build_clip(BuiltinEmbedderConfig(), vocabulary())
        model.save_pretrained(workdir / "model")
        processor.save_pretrained(workdir / "model")
        embedder = HFDualEncoder(workdir / "model")
        images = []
        for i, scene in enumerate(scenes):
            path = workdir / f"{i}.png"
            Image.fromarray(render_scene(scene)).save(path)
            images.append(path)
        texts = [question_text(s, "colour", i % 3) + f" {i}" for i, s in enumerate(scenes)]

        rows = []
        for batch_size in (16, 64, 256):
            seconds = timeit(lambda b=batch_size: embedder.embed_images(images, batch_size=b), 2)
            rows.append({"what": "images", "batch": batch_size, "items_per_s": n / seconds})
        for batch_size in (64, 256):
            seconds = timeit(lambda b=batch_size: embedder.embed_texts(texts, batch_size=b), 2)
            rows.append({"what": "texts", "batch": batch_size, "items_per_s": n / seconds})

        cache = EmbeddingCache(workdir / "cache")
        started = time.perf_counter()
        cache.embed_images(embedder, images)
        cache.embed_texts(embedder, texts)
        cold = time.perf_counter() - started
        warm = timeit(
            lambda: (
                EmbeddingCache(workdir / "cache").embed_images(embedder, images),
                EmbeddingCache(workdir / "cache").embed_texts(embedder, texts),
            ),
            3,
        )
        rows.append({"what": "cache cold (images+texts)", "batch": 64, "items_per_s": 2 * n / cold})
        rows.append({"what": "cache warm (images+texts)", "batch": 64, "items_per_s": 2 * n / warm})
        rows.append({"what": "warm/cold speed-up", "batch": None, "items_per_s": cold / warm})
    report(
        "embed_quick" if args.quick else "embed",
        rows,
        {"n": n, "model": "built-in CLIP (BuiltinEmbedderConfig defaults)", "threads": 2},
    )


if __name__ == "__main__":
    main()

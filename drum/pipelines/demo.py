"""``drum demo``: the main job on the built-in default, end to end, every step timed.

world -> built-in CLIP embedder -> embeddings (cached) -> FAISS index -> demonstrations for
every strategy -> retrieval quality on the val split, printed as a table and saved as JSON
(with the resolved config and provenance) and markdown. A second run reuses the world, the
embedder and the cached embeddings.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from drum.data.world.generate import WorldConfig, make_world
from drum.embed.builtin import BuiltinEmbedderConfig, train_builtin_embedder
from drum.embed.cache import EmbeddingCache
from drum.embed.hf import HFDualEncoder
from drum.pipelines.retrieval_quality import (
    RetrievalQualityConfig,
    measure_retrieval_quality,
    quality_table_markdown,
)
from drum.utils.io import atomic_write_json, atomic_write_text
from drum.utils.provenance import provenance

QUICK_WORLD = WorldConfig(n_train=2000, n_pool=300, n_val=100, n_test=100)
QUICK_EMBEDDER = BuiltinEmbedderConfig(steps=60, batch_size=64)


def _rich_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="Demonstrations that reveal the query's answer (hit@k, val split, 95% CI)")
    strategies = list(dict.fromkeys(row["strategy"] for row in rows))
    table.add_column("task")
    for strategy in strategies:
        table.add_column(strategy, justify="right")
    for task in dict.fromkeys(row["task"] for row in rows):
        cells = []
        for strategy in strategies:
            (row,) = [r for r in rows if r["task"] == task and r["strategy"] == strategy]
            metric = row["answer_hit_rate"]
            cells.append(f"{metric['mean']:.3f} ±{(metric['ci95'][1] - metric['ci95'][0]) / 2:.3f}")
        table.add_row(task, *cells)
    return table


def run_demo(out: Path, quick: bool = False, console: Console | None = None) -> dict[str, Any]:
    """Run the demo into ``out``; returns the results dictionary it saved."""
    console = console or Console()
    torch.set_num_threads(max(1, min(torch.get_num_threads(), 2)))
    world_config = QUICK_WORLD if quick else WorldConfig()
    embedder_config = QUICK_EMBEDDER if quick else BuiltinEmbedderConfig()
    quality_config = RetrievalQualityConfig(bootstrap_resamples=200 if quick else 1000)
    timings: dict[str, float] = {}

    started = time.perf_counter()
    console.rule("1/3 built-in world")
    world_dir = make_world(out / "world", world_config)
    timings["world_seconds"] = time.perf_counter() - started

    started = time.perf_counter()
    console.rule("2/3 built-in embedder (a tiny CLIPModel trained contrastively)")
    model_dir = train_builtin_embedder(world_dir, out / "models" / "embedder", embedder_config)
    timings["embedder_seconds"] = time.perf_counter() - started

    started = time.perf_counter()
    console.rule("3/3 retrieval per strategy")
    embedder = HFDualEncoder(model_dir)
    rows = measure_retrieval_quality(
        world_dir, embedder, quality_config, cache=EmbeddingCache(out / "cache")
    )
    timings["retrieval_seconds"] = time.perf_counter() - started

    card = (model_dir / "drum_embedder.json").read_text(encoding="utf-8")
    results = {
        "config": {
            "world": asdict(world_config),
            "embedder": asdict(embedder_config),
            "retrieval_quality": asdict(quality_config),
            "quick": quick,
        },
        "embedder_card": json.loads(card),
        "rows": rows,
        "timings": {key: round(value, 1) for key, value in timings.items()},
        "provenance": provenance(),
    }
    results_dir = out / "results"
    atomic_write_json(results_dir / "retrieval_quality.json", results)
    atomic_write_text(results_dir / "retrieval_quality.md", quality_table_markdown(rows) + "\n")
    console.print(_rich_table(rows))
    console.print(f"timings (s): {results['timings']}")
    console.print(f"results: {results_dir / 'retrieval_quality.json'}")
    return results

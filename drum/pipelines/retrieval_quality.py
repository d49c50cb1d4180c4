"""Retrieval quality of every strategy on every task of a world, as JSON and a table.

The foundation demo: world -> built-in embedder -> FAISS index -> demonstrations per strategy
-> how often they reveal the query's answer (``answer_hit_rate``) and how many of them do
(``answer_precision``), with bootstrap 95% confidence intervals.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drum.builtin.world.tasks import WORLD_TASKS
from drum.data.jsonl import read_examples
from drum.embed.base import Embedder
from drum.embed.cache import EmbeddingCache
from drum.embed.example_embeddings import ExampleEmbeddings
from drum.metrics.stats import bootstrap_ci
from drum.results import Estimate, markdown_table_lines
from drum.retrieve.quality import answer_hit_rate, answer_precision
from drum.retrieve.retriever import DemonstrationRetriever
from drum.retrieve.strategies import DEFAULT_EMBEDDER, RetrievalConfig, get_strategy

DEFAULT_STRATEGIES = ("random", "fixed", "image", "text", "cross", "concat")


@dataclass(frozen=True)
class RetrievalQualityConfig:
    """Which tasks, strategies, shot count and query split (its first ``max_queries``
    queries; None: all) to measure."""

    tasks: tuple[str, ...] = WORLD_TASKS
    strategies: tuple[str, ...] = DEFAULT_STRATEGIES
    k: int = 4
    query_split: str = "val"
    image_weight: float = 0.5
    seed: int = 0
    bootstrap_resamples: int = 1000
    max_queries: int | None = None

    def __post_init__(self) -> None:
        for strategy in self.strategies:
            RetrievalConfig(strategy=strategy)  # validates the name
        if self.query_split not in ("val", "test"):
            raise ValueError(f"query_split must be 'val' or 'test', got {self.query_split!r}")
        if self.max_queries is not None and self.max_queries < 1:
            raise ValueError(f"max_queries must be >= 1 or None, got {self.max_queries}")


def measure_retrieval_quality(
    world_dir: Path,
    embedder: Embedder,
    config: RetrievalQualityConfig,
    cache: EmbeddingCache | None = None,
    progress: bool = True,
    embedders: Mapping[str, Embedder] | None = None,
) -> list[dict[str, Any]]:
    """One row per (task, strategy): hit rate and precision of the top-k demonstrations.

    ``embedder`` serves the strategies whose spec names the ``default`` embedder;
    ``embedders`` the others, by name (e.g. ``{"joint": LVLMEmbedder(...)}`` for ``joint``).
    Each embedder computes the parts its strategies compare (``StrategySpec.parts``)."""
    served = {DEFAULT_EMBEDDER: embedder, **(embedders or {})}
    specs = [get_strategy(strategy) for strategy in config.strategies]
    parts: dict[str, set[str]] = {}
    for spec in specs:
        if spec.uses_similarity:
            if spec.embedder not in served:
                raise ValueError(
                    f"strategy {spec.name!r} needs the embedder {spec.embedder!r} "
                    f"(embedders given: {sorted(served)})"
                )
            parts.setdefault(spec.embedder, set()).update(spec.parts)
    rows = []
    for task in config.tasks:
        pool = read_examples(world_dir / task / "pool.jsonl", verify_images=False)
        queries = read_examples(
            world_dir / task / f"{config.query_split}.jsonl", verify_images=False
        )[: config.max_queries]
        # (pool, queries) embeddings per embedder name; an embedder no strategy uses: none.
        embedded = {
            name: tuple(
                ExampleEmbeddings.compute(examples, served[name], cache, progress, wanted)
                for examples in (pool, queries)
            )
            for name, wanted in parts.items()
        }
        by_id = {example.id: example for example in pool}
        for strategy, spec in zip(config.strategies, specs, strict=True):
            retrieval_config = RetrievalConfig(
                strategy=strategy, k=config.k, image_weight=config.image_weight, seed=config.seed
            )
            pool_side: ExampleEmbeddings | list = pool
            query_embeddings = None
            if spec.uses_similarity:
                pool_side, query_embeddings = embedded[spec.embedder]
            started = time.perf_counter()
            retriever = DemonstrationRetriever(pool_side, retrieval_config)
            retrievals = retriever.retrieve(queries, query_embeddings)
            seconds = time.perf_counter() - started
            row: dict[str, Any] = {"task": task, "strategy": strategy, "k": config.k}
            for name, values in (
                ("answer_hit_rate", answer_hit_rate(queries, retrievals, by_id)),
                ("answer_precision", answer_precision(queries, retrievals, by_id)),
            ):
                row[name] = Estimate(
                    *bootstrap_ci(values, n_resamples=config.bootstrap_resamples, seed=config.seed)
                ).to_json()
            row["queries"] = len(queries)
            row["pool"] = len(pool)
            row["retrieval_seconds"] = round(seconds, 3)
            rows.append(row)
    return rows


def quality_table_markdown(rows: list[dict[str, Any]]) -> str:
    """A markdown table (task x strategy) rendered from the result rows."""
    strategies = list(dict.fromkeys(row["strategy"] for row in rows))
    tasks = list(dict.fromkeys(row["task"] for row in rows))
    cell = {(row["task"], row["strategy"]): row for row in rows}
    rows = [
        [
            task,
            *(
                Estimate.from_json(cell[(task, strategy)]["answer_hit_rate"]).format(decimals=3)
                for strategy in strategies
            ),
        ]
        for task in tasks
    ]
    return "\n".join(markdown_table_lines(["task", *strategies], rows))

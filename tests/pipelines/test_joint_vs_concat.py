"""Retrieval quality with named embedders (``joint`` among them) and the ``concat`` vs ``joint``
comparison on a tiny world, with the shipped built-in models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from drum.builtin.assets import ASSETS_DIR
from drum.data.jsonl import read_examples
from drum.embed.example_embeddings import ExampleEmbeddings
from drum.embed.hf import HFDualEncoder
from drum.embed.joint import LVLMEmbedder
from drum.pipelines.joint_vs_concat import compare
from drum.pipelines.retrieval_quality import RetrievalQualityConfig, measure_retrieval_quality
from drum.retrieve.quality import answer_hit_rate
from drum.retrieve.retriever import DemonstrationRetriever
from drum.retrieve.strategies import RetrievalConfig


def test_retrieval_quality_serves_each_strategy_its_embedder(
    tiny_world: Path, tiny_clip_dir: Path
) -> None:
    clip, joint = HFDualEncoder(tiny_clip_dir), LVLMEmbedder(ASSETS_DIR / "lvlm")
    config = RetrievalQualityConfig(
        tasks=("vqa",), strategies=("random", "concat", "joint"), k=3, max_queries=10
    )
    rows = measure_retrieval_quality(
        tiny_world, clip, config, progress=False, embedders={"joint": joint}
    )
    assert [(r["strategy"], r["queries"]) for r in rows] == [
        ("random", 10), ("concat", 10), ("joint", 10)
    ]  # fmt: skip
    pool = read_examples(tiny_world / "vqa" / "pool.jsonl")
    queries = read_examples(tiny_world / "vqa" / "val.jsonl")[:10]
    for strategy, embedder, parts in (
        ("concat", clip, ("image", "text")),
        ("joint", joint, ("joint",)),
    ):
        retriever = DemonstrationRetriever(
            ExampleEmbeddings.compute(pool, embedder, parts=parts), RetrievalConfig(strategy, k=3)
        )
        retrievals = retriever.retrieve(
            queries, ExampleEmbeddings.compute(queries, embedder, parts=parts)
        )
        hits = answer_hit_rate(queries, retrievals, {e.id: e for e in pool})
        (row,) = [r for r in rows if r["strategy"] == strategy]
        assert row["answer_hit_rate"]["value"] == pytest.approx(float(np.mean(hits)))
    with pytest.raises(ValueError, match="needs the embedder 'joint'"):
        measure_retrieval_quality(tiny_world, clip, config, progress=False)


def test_compare_writes_both_measurements(tiny_world: Path, tmp_path: Path) -> None:
    results = compare(tiny_world, tmp_path, max_queries=3, shots=(0, 1), quality_k=(2,),
                      progress=False)  # fmt: skip
    rows = results["icl"]["rows"]
    assert {(r["strategy"], r["shots"]) for r in rows} == {
        ("zero-shot", 0), ("random", 1), ("concat", 1), ("joint", 1)
    }  # fmt: skip
    assert all(r["n_queries"] == 3 for r in rows)
    quality = json.loads((tmp_path / "retrieval_quality.json").read_text())["rows"]
    assert [(r["task"], r["strategy"], r["k"]) for r in quality] == [
        (task, strategy, 2)
        for task in ("vqa", "caption", "classification")
        for strategy in ("random", "concat", "joint")
    ]
    table = (tmp_path / "joint_vs_concat.md").read_text()
    assert "| task | k | random | concat | joint |" in table
    shares = results["question_type_share"]
    assert set(shares) == {"random", "concat", "joint"} and all(
        0 <= v <= 1 for v in shares.values()
    )
    assert "asking the query's question type" in table
    assert (tmp_path / "icl" / "icl_results.json").is_file()

"""``concat`` vs ``joint`` on the built-in world: does embedding a demonstration's image and
text together (the world LVLM's last-token state, ``drum.embed.joint``) choose better
demonstrations than concatenating two separate CLIP embeddings?

Both strategies are measured on the same queries (the first ``max_queries`` of each task's
test split), with the same LVLM reading the prompts (the shipped built-in world LVLM), so the
only difference between a ``concat`` and a ``joint`` row is which demonstrations were chosen:

* few-shot ICL (``run_icl_eval``): the world LVLM's VQA accuracy, caption CIDEr-D and
  classification accuracy, ``random`` (one seed) and zero-shot beside them for scale;
* retrieval quality (``measure_retrieval_quality``): how often the top-k demonstrations share
  the query's canonical answer (hit rate) and what share of them do (precision), per k;
  for VQA also what share of them ask the query's question type (``question_type_share``:
  an answer is fixed by the question type and the asked value, so this splits a wrong
  demonstration into "wrong question" and "right question, other value").

The world must be the default one (``drum data make-world``), the one the shipped models were
trained on. Writes ``out/icl/`` (``icl_results.json`` with its report and per-query records),
``out/retrieval_quality.json`` and ``out/joint_vs_concat.md``; embeddings are cached in
``out/cache``. Run::

    python -m drum.pipelines.joint_vs_concat --world runs/world --out runs/joint_vs_concat
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from drum.builtin.assets import ASSETS_DIR
from drum.builtin.world.tasks import world_tasks
from drum.data.jsonl import read_examples
from drum.embed.base import Embedder
from drum.embed.cache import EmbeddingCache
from drum.embed.example_embeddings import ExampleEmbeddings
from drum.embed.hf import HFDualEncoder
from drum.embed.joint import LVLMEmbedder
from drum.eval.icl import ICLEvalConfig, run_icl_eval
from drum.eval.report import markdown_table
from drum.lvlm.hf import HFLVLM
from drum.pipelines.retrieval_quality import RetrievalQualityConfig, measure_retrieval_quality
from drum.results import Estimate, markdown_table_lines
from drum.retrieve.retriever import DemonstrationRetriever
from drum.retrieve.strategies import RetrievalConfig, get_strategy
from drum.utils.io import atomic_write_json, atomic_write_text
from drum.utils.provenance import provenance

STRATEGIES = ("random", "concat", "joint")
SHOTS = (0, 1, 2, 4)
QUALITY_K = (1, 4)


def compare(
    world_dir: Path,
    out_dir: Path,
    max_queries: int = 500,
    shots: Sequence[int] = SHOTS,
    quality_k: Sequence[int] = QUALITY_K,
    models_dir: Path = ASSETS_DIR,
    progress: bool = True,
) -> dict[str, Any]:
    """Run both measurements (module docstring); return ``{"icl": ..., "quality": rows}``."""
    lvlm = HFLVLM(models_dir / "lvlm")
    embedders = {
        "default": HFDualEncoder(models_dir / "embedder"),
        "joint": LVLMEmbedder(lvlm),  # the evaluated LVLM itself, one copy of its weights
    }
    cache = EmbeddingCache(out_dir / "cache")
    config = ICLEvalConfig(
        strategies=STRATEGIES, shots=tuple(shots), seeds=(0,), max_queries=max_queries
    )
    tasks = list(world_tasks(world_dir, split="test").values())
    icl = run_icl_eval(tasks, lvlm, config, embedders, out_dir / "icl", cache, progress)
    quality = []
    for k in quality_k:
        quality_config = RetrievalQualityConfig(
            strategies=STRATEGIES, k=k, query_split="test", max_queries=max_queries
        )
        quality += measure_retrieval_quality(
            world_dir, embedders["default"], quality_config, cache, progress, embedders
        )
    k = max(quality_k)
    types = question_type_share(world_dir, embedders, k, max_queries, cache)
    atomic_write_json(
        out_dir / "retrieval_quality.json",
        {
            "config": {"max_queries": max_queries},
            "rows": quality,
            "vqa_question_type_share": {"k": k, **types},
            "provenance": provenance(),
        },
    )
    atomic_write_text(out_dir / "joint_vs_concat.md", render(icl, quality, types, k))
    return {"icl": icl, "quality": quality, "question_type_share": types}


def question_type_share(
    world_dir: Path,
    embedders: dict[str, Embedder],
    k: int,
    max_queries: int,
    cache: EmbeddingCache | None = None,
) -> dict[str, float]:
    """Per strategy, the share of the top-``k`` VQA demonstrations (test queries) that ask the
    query's question type (the world's ``meta["question_type"]``)."""
    pool = read_examples(world_dir / "vqa" / "pool.jsonl", verify_images=False)
    queries = read_examples(world_dir / "vqa" / "test.jsonl", verify_images=False)[:max_queries]
    by_id = {example.id: example for example in pool}
    shares = {}
    for strategy in STRATEGIES:
        spec = get_strategy(strategy)
        pool_side: ExampleEmbeddings | list = pool
        query_embeddings = None
        if spec.uses_similarity:
            embedder = embedders[spec.embedder]
            pool_side = ExampleEmbeddings.compute(pool, embedder, cache, False, spec.parts)
            query_embeddings = ExampleEmbeddings.compute(
                queries, embedder, cache, False, spec.parts
            )
        retrievals = DemonstrationRetriever(pool_side, RetrievalConfig(strategy, k=k)).retrieve(
            queries, query_embeddings
        )
        same = [
            by_id[demo].meta["question_type"] == query.meta["question_type"]
            for query, retrieval in zip(queries, retrievals, strict=True)
            for demo in retrieval.demo_ids
        ]
        shares[strategy] = round(sum(same) / len(same), 4)
    return shares


def render(
    icl: dict[str, Any],
    quality: list[dict[str, Any]],
    question_types: dict[str, float] | None = None,
    k: int | None = None,
) -> str:
    """Markdown: the ICL tables (``drum eval``'s), then hit rate / precision per task x k."""
    lines = ["## Few-shot ICL (built-in world LVLM)", "", markdown_table(icl), ""]
    lines += ["## Retrieval quality (hit rate / precision of the top-k)", ""]
    strategies = list(dict.fromkeys(row["strategy"] for row in quality))
    cells = {(row["task"], row["k"], row["strategy"]): row for row in quality}
    keys = list(dict.fromkeys((row["task"], row["k"]) for row in quality))
    body = [
        [
            task,
            str(k),
            *(
                " / ".join(
                    Estimate.from_json(cells[task, k, strategy][metric]).format(decimals=3)
                    for metric in ("answer_hit_rate", "answer_precision")
                )
                for strategy in strategies
            ),
        ]
        for task, k in keys
    ]
    lines += markdown_table_lines(["task", "k", *strategies], body)
    if question_types:
        lines += ["", f"VQA: share of the top-{k} demonstrations asking the query's question type:"]
        lines += [""] + markdown_table_lines(
            list(question_types), [[f"{share:.3f}" for share in question_types.values()]]
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", type=Path, required=True, help="drum data make-world --out")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--max-queries", type=int, default=500)
    parser.add_argument("--shots", default=",".join(map(str, SHOTS)))
    args = parser.parse_args(argv)
    shots = tuple(int(k) for k in args.shots.split(","))
    compare(args.world, args.out, args.max_queries, shots)
    print((args.out / "joint_vs_concat.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()

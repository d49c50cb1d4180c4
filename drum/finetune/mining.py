"""Iterative demonstration mining: rounds of retrieve -> LVLM feedback -> fine-tune.

Round ``r`` retrieves ``M`` candidates per training query with round ``r - 1``'s embedder
(round 0 = the starting embedder) under the ``concat`` score, has the LVLM score them
(``drum.feedback``), and fine-tunes round ``r - 1``'s embedder on the re-ranked lists. A
better embedder retrieves new, harder candidates for the next round. One embedder serves all
tasks (as UDR's unified retriever): the lists of every task are trained on together.

Layout of ``out_dir``::

    mining.json              config, and per round: feedback statistics and validation
    feedback.jsonl           the LVLM feedback cache, shared by all rounds
    cache/                   embeddings of every round's embedder (retrieval, validation)
    round_0/round.json       validation of the starting embedder
    round_<r>/embedder/      round r's embedder (``HFDualEncoder``-loadable)
    round_<r>/round.json     written when round r is complete: a rerun skips it

A rerun resumes: finished rounds are skipped, a round's scoring resumes from the feedback
cache and its training from its last epoch checkpoint.

Under ``torchrun`` / ``accelerate launch`` (N processes) the retriever training is
data-parallel (``train_retriever``) and the LVLM feedback scoring is sharded
(``drum.feedback.sharded``: each rank scores a contiguous block of the prompts into its own
part of the feedback cache, rank 0 merges them in scoring order). Retrieval embeds on rank 0
first (the others read the embedding cache); validation is shared as ``drum eval`` shares an
evaluation (rank 0 embeds, then each rank generates its block of the ICL prompts).
Every rank builds the same lists; only rank 0 writes the round records and the summary.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from drum.data.example import Example
from drum.data.jsonl import read_examples
from drum.embed.cache import EmbeddingCache
from drum.embed.example_embeddings import ExampleEmbeddings
from drum.embed.hf import HFDualEncoder
from drum.eval.icl import ICLEvalConfig, check_eval, evaluate_icl
from drum.eval.task_data import TaskData
from drum.feedback.cache import FeedbackCache
from drum.feedback.scorer import QueryFeedback
from drum.feedback.sharded import score_feedback_sharded
from drum.finetune.config import MiningConfig
from drum.finetune.lists import RankedList, ranked_lists
from drum.finetune.trainer import train_retriever
from drum.lvlm.base import LVLM
from drum.retrieve.quality import answer_hit_rate, answer_precision
from drum.retrieve.retriever import DemonstrationRetriever
from drum.retrieve.strategies import DEFAULT_EMBEDDER, RetrievalConfig
from drum.tasks.spec import TaskSpec
from drum.utils.checkpoint import card_matches
from drum.utils.distributed import DistContext
from drum.utils.io import atomic_write_json
from drum.utils.provenance import provenance

SUMMARY_NAME = "mining.json"
ROUND_NAME = "round.json"


def training_queries(pool: Sequence[Example], n: int, seed: int) -> list[Example]:
    """A seeded subset of ``n`` pool examples that serve as training queries."""
    rows = np.random.default_rng(seed).permutation(len(pool))[:n]
    return [pool[int(i)] for i in sorted(rows)]


def retrieve_candidates(
    embedder: HFDualEncoder,
    pool: Sequence[Example],
    queries: Sequence[Example],
    m: int,
    image_weight: float,
    cache: EmbeddingCache | None = None,
) -> tuple[dict[str, list[Example]], dict[str, list[float]]]:
    """Per query id, its ``m`` most similar pool examples (best first, itself excluded) and
    their ``concat`` scores."""
    embeddings = ExampleEmbeddings.compute(pool, embedder, cache)
    row = {example.id: i for i, example in enumerate(pool)}
    rows = [row[query.id] for query in queries] if all(q.id in row for q in queries) else None
    if rows is not None:
        query_embeddings = ExampleEmbeddings(
            list(queries), embeddings.image[rows], embeddings.text[rows]
        )
    else:
        query_embeddings = ExampleEmbeddings.compute(queries, embedder, cache)
    config = RetrievalConfig(
        strategy="concat", k=m, order="similar_first", image_weight=image_weight
    )
    retrievals = DemonstrationRetriever(embeddings, config).retrieve(queries, query_embeddings)
    by_id = {example.id: example for example in pool}
    candidates = {r.query_id: [by_id[i] for i in r.demo_ids] for r in retrievals}
    scores = {r.query_id: list(r.scores) for r in retrievals}
    return candidates, scores


def feedback_statistics(feedback: Sequence[QueryFeedback]) -> dict[str, float]:
    """How the LVLM's order relates to the retriever's (candidates in retrieval order).

    ``top1_agreement``: the retriever's best candidate is also the LVLM's best;
    ``best_gain`` / ``first_gain``: mean ``s(c)`` of the LVLM's best / the retriever's best.
    """
    best = [max(item.scores) for item in feedback]
    first = [item.scores[0] for item in feedback]
    return {
        "queries": len(feedback),
        "top1_agreement": float(np.mean([f >= b for f, b in zip(first, best, strict=True)])),
        "best_gain": float(np.mean(best)),
        "first_gain": float(np.mean(first)),
        "zero_shot_loglik": float(np.mean([item.zero_shot for item in feedback])),
    }


def validation_config(config: MiningConfig) -> ICLEvalConfig:
    """The ICL evaluation each round's validation runs: ``concat`` at ``val_shots`` on the
    first ``val_queries`` queries."""
    return ICLEvalConfig(
        strategies=("concat",),
        shots=(config.val_shots,),
        image_weight=config.train.image_weight,
        max_queries=config.val_queries,
        bootstrap_resamples=200,
        corpus_ci="fixed_statistics",
    )


def validate(
    embedder: HFDualEncoder,
    lvlm: LVLM | None,
    tasks: Sequence[TaskSpec | TaskData],
    config: MiningConfig,
    progress: bool,
    cache: EmbeddingCache | None = None,
    context: DistContext | None = None,
) -> dict[str, Any]:
    """Per task: answer hit rate and precision of ``val_shots`` retrieved demonstrations,
    and (with an LVLM) its ICL metric with them, on the first ``val_queries`` queries.

    ``tasks``: specs, or their data as ``load_task_data(spec, validation_config(config))``
    read them (``mine`` reads each task once for all its rounds).
    ``context``: the ranks of a ``torchrun`` job, all of which call this (rank 0 embeds into
    ``cache`` first, each rank generates its share of the ICL prompts); every rank returns
    what one process returns."""
    context = context or DistContext()
    image_weight = config.train.image_weight
    eval_config = validation_config(config)
    results: dict[str, Any] = {}
    # Read and checked once (unless given so); the one embedder is the one being validated.
    for task in check_eval(tasks, eval_config, (DEFAULT_EMBEDDER,)):
        pool, queries = task.pool, task.queries  # hit@k and the ICL metric compare answers
        retrieval = RetrievalConfig(
            strategy="concat", k=config.val_shots, image_weight=image_weight
        )
        # Through ``cache``, the ICL evaluation below and the next round's retrieval reuse
        # these embeddings instead of computing them again.
        pool_embeddings, query_embeddings = context.main_first(
            lambda pool=pool, queries=queries: (
                ExampleEmbeddings.compute(pool, embedder, cache),
                ExampleEmbeddings.compute(queries, embedder, cache),
            )
        )
        retriever = DemonstrationRetriever(pool_embeddings, retrieval)
        retrievals = retriever.retrieve(queries, query_embeddings)
        by_id = {example.id: example for example in pool}
        row: dict[str, Any] = {
            f"hit@{config.val_shots}": float(answer_hit_rate(queries, retrievals, by_id).mean()),
            f"precision@{config.val_shots}": float(
                answer_precision(queries, retrievals, by_id).mean()
            ),
        }
        if lvlm is not None:
            (icl_row,) = evaluate_icl(
                task,
                lvlm,
                eval_config,
                {DEFAULT_EMBEDDER: embedder},
                cache,
                progress and context.is_main,
                context=context,
            )
            metric = task.spec.primary_metric
            row[metric] = icl_row["metric"][metric]["value"]
        results[task.name] = row
    return results


def _lists_for_task(
    task: TaskSpec,
    embedder: HFDualEncoder,
    lvlm: LVLM,
    feedback_cache: FeedbackCache,
    embedding_cache: EmbeddingCache,
    config: MiningConfig,
    progress: bool,
    context: DistContext,
) -> tuple[list[RankedList], dict[str, float]]:
    # Pool examples are both the demonstrations and the training queries: all need answers.
    pool = read_examples(task.pool, verify_images=False, require_answers=True)
    queries = training_queries(pool, config.queries_per_task, config.train.seed)

    def retrieve() -> tuple[dict[str, list[Example]], dict[str, list[float]]]:
        return retrieve_candidates(
            embedder,
            pool,
            queries,
            config.feedback.candidates,
            config.train.image_weight,
            embedding_cache,
        )

    # Rank 0 embeds; the others then read the same vectors from the cache (hits only).
    candidates, similarity = context.main_first(retrieve)
    by_id = {example.id: example for example in pool}
    feedback = score_feedback_sharded(
        lvlm,
        queries,
        candidates,
        feedback_cache,
        config.feedback,
        task.template,
        progress and context.is_main,
        context,
    )
    statistics = feedback_statistics(feedback)
    if config.relevance == "similarity":
        # Ablation: the embedder's own order (retrieval order is already best first).
        feedback = [
            QueryFeedback(item.query_id, item.candidate_ids, tuple(similarity[item.query_id]), 0.0)
            for item in feedback
        ]
    return ranked_lists(queries, feedback, by_id), statistics


def mine(
    tasks: Sequence[TaskSpec],
    lvlm: LVLM,
    base_embedder: str | Path,
    out_dir: str | Path,
    config: MiningConfig | None = None,
    progress: bool = True,
    context: DistContext | None = None,
) -> dict[str, Any]:
    """Run (or resume) ``config.rounds`` rounds; returns the summary written to
    ``out_dir/mining.json``. ``tasks`` give each task's pool (training queries and
    candidates) and its validation queries (``TaskSpec.queries``).

    Example::

        summary = mine(
            list(world_tasks("world", "val").values()), HFLVLM("models/lvlm"),
            "models/embedder", "runs/drum", MiningConfig(rounds=1),
        )
        HFDualEncoder(summary["final_embedder"])  # the DRUM-trained retriever
    """
    config = config or MiningConfig()
    context = context or DistContext.from_env()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary_path = out_dir / SUMMARY_NAME
    resolved = {
        "mining": config.to_dict(),
        "tasks": [task.to_dict() for task in tasks],
        "lvlm": lvlm.fingerprint,
        "base_embedder": str(Path(base_embedder).resolve()),
    }
    if summary_path.is_file() and not card_matches(summary_path, {"config": resolved}):
        raise ValueError(
            f"{summary_path} belongs to a run with another config; use a new output "
            "directory (or delete this one) to mine with this config"
        )
    embedding_cache = EmbeddingCache(out_dir / "cache")
    device = context.device
    rounds: list[dict[str, Any]] = []

    def write_summary() -> None:
        if not context.is_main:
            return
        atomic_write_json(
            summary_path,
            {
                "config": resolved,
                "rounds": rounds,
                "final_embedder": rounds[-1].get("embedder") if rounds else None,
                "provenance": provenance(),
            },
        )

    validation_tasks = check_eval(tasks, validation_config(config), (DEFAULT_EMBEDDER,))
    baseline_path = out_dir / "round_0" / ROUND_NAME
    # Rank 0's view decides (it writes the file), so every rank takes the same branch.
    if not context.all_gather_object(baseline_path.is_file())[0]:
        started = time.perf_counter()
        embedder = HFDualEncoder(base_embedder, device=device)
        validation = validate(
            embedder, lvlm, validation_tasks, config, progress, embedding_cache, context
        )  # every rank: the evaluation is shared
        if context.is_main:
            atomic_write_json(
                baseline_path,
                {
                    "round": 0,
                    "embedder": str(Path(base_embedder).resolve()),
                    "validation": validation,
                    "seconds": {"validation": round(time.perf_counter() - started, 1)},
                },
            )
    context.barrier()
    rounds.append(json.loads(baseline_path.read_text(encoding="utf-8")))
    write_summary()

    previous_dir = Path(base_embedder)
    for index in range(1, config.rounds + 1):
        round_dir = out_dir / f"round_{index}"
        record_path = round_dir / ROUND_NAME
        if not record_path.is_file():
            timings: dict[str, float] = {}
            started = time.perf_counter()
            embedder = HFDualEncoder(previous_dir, device=device)

            def score(embedder: HFDualEncoder = embedder) -> tuple[list[RankedList], dict]:
                # Every rank scores its share of the prompts (drum.feedback.sharded).
                feedback_cache = FeedbackCache(out_dir / "feedback.jsonl")
                lists: list[RankedList] = []
                statistics = {}
                for task in tasks:
                    task_lists, statistics[task.name] = _lists_for_task(
                        task,
                        embedder,
                        lvlm,
                        feedback_cache,
                        embedding_cache,
                        config,
                        progress,
                        context,
                    )
                    lists.extend(task_lists)
                return lists, statistics

            lists, statistics = score()
            timings["retrieve_and_score"] = round(time.perf_counter() - started, 1)
            started = time.perf_counter()
            embedder_dir = train_retriever(
                previous_dir, lists, round_dir / "embedder", config.train, progress, context
            )
            timings["train"] = round(time.perf_counter() - started, 1)
            started = time.perf_counter()
            validation = validate(
                HFDualEncoder(embedder_dir, device=device),
                lvlm,
                validation_tasks,
                config,
                progress,
                embedding_cache,
                context,
            )
            timings["validation"] = round(time.perf_counter() - started, 1)
            if context.is_main:
                atomic_write_json(
                    record_path,
                    {
                        "round": index,
                        "embedder": str(embedder_dir.resolve()),
                        "feedback": statistics,
                        "training_lists": len(lists),
                        "validation": validation,
                        "seconds": timings,
                    },
                )
        context.barrier()
        rounds.append(json.loads(record_path.read_text(encoding="utf-8")))
        write_summary()
        previous_dir = round_dir / "embedder"
    context.barrier()  # the summary is written
    return json.loads(summary_path.read_text(encoding="utf-8"))


def rounds_table(runs: Mapping[str, dict[str, Any]]) -> str:
    """Markdown: per mining run (name -> ``mine`` summary) and round, the validation metrics
    of every task."""
    lines = []
    for name, summary in runs.items():
        rounds = summary["rounds"]
        tasks = list(rounds[0]["validation"])
        header = [f"{task} {metric}" for task in tasks for metric in rounds[0]["validation"][task]]
        lines += [f"#### mining run `{name}` (validation, {len(rounds) - 1} rounds)", ""]
        lines += ["| round | " + " | ".join(header) + " |", "|---|" + "---|" * len(header)]
        for record in rounds:
            values = [
                f"{record['validation'][task][metric]:.3f}"
                for task in tasks
                for metric in rounds[0]["validation"][task]
            ]
            lines.append(f"| {record['round']} | " + " | ".join(values) + " |")
        lines.append("")
    return "\n".join(lines)

"""In-context-learning evaluation: task x strategy x shots x seed -> metrics with 95% CIs.

Every task's data is read and checked once (``drum.eval.task_data.TaskData``, which also keeps
the pool's image hashes for every retriever); for every task the pool and query embeddings are
computed once (and cached); for every strategy the retriever is built once and asked for the
largest shot count once. Smaller shot counts are read off that deepest retrieval: with the
default ``similar_last`` order a retrieval lists demonstrations least-similar first, so its
last ``k`` are exactly the ``k`` most similar, i.e. what a ``k``-shot retrieval returns
(``similar_first``: the first ``k``). For ``fixed`` this is again exactly the ``k``-shot
retrieval; for ``random`` it is a uniform ``k``-subset of the same draw, so the shot counts of
one seed see nested demonstration sets (less noise between shot counts, as in a paired design).
``order="random"`` has no nested subsets, so it retrieves per shot count.

Strategies are ``StrategySpec`` data (``drum.retrieve.strategies``): each names the embedder
it compares with, and the embedders come as a mapping ``{"default": clip, "drum": drum_clip}``,
so a new retriever is one more spec and one more entry, never a new argument. Each embedder
computes only the parts its strategies compare (``ICLEvalConfig.embedder_parts``: image and
text rows, and / or a ``joint`` strategy's joint rows from a ``JointEmbedder``). A strategy
whose embedder is missing is a ``ValueError`` before any model runs.

Conventions of the result rows:

* ``seed`` is the ``RetrievalConfig.seed`` of the row, or ``None`` (JSON ``null``) when no seed
  can change the result: similarity strategies (unless ``order="random"``) and zero-shot run
  once, whatever ``ICLEvalConfig.seeds`` says. ``random`` and ``fixed`` get one row per seed.
  A spec with a ``train_seed`` (one of several training runs of a retriever) carries it instead.
* zero-shot prompts hold no demonstrations, so no strategy can change them: they are generated
  once per task and reported as strategy ``"zero-shot"`` with ``shots=0`` and ``seed=None``;
  strategy rows start at one shot.
* confidence intervals are percentile-bootstrap 95% intervals over queries with a fixed
  bootstrap seed, so every row of a task is resampled with the same index sets (paired).

Per-query records (``icl_queries.jsonl`` beside ``icl_results.json``, one JSON object a line,
written atomically at the end of the run): one per (task, strategy, shots, seed, query), in
row order then query order::

    {task, strategy, shots, seed, query_id, demo_ids, similarity, feedback,
     prediction, references, scores: {metric: per-query score}, score}

``demo_ids`` are in prompt order; ``similarity[i]`` is the score the retriever ranked
``demo_ids[i]`` by (inner product of the strategy's query and pool vectors), ``null`` for
``random``/``fixed`` (no ranking) and zero-shot; ``feedback[i]`` is the LVLM feedback
``s(c) = log p(a | c, q) - log p(a | q)`` of ``demo_ids[i]`` for this query when a given
feedback cache holds both terms (``FeedbackLookup``), else ``null`` (never computed here).
``score`` is the primary (first) metric's. Per-query scores are those the row's aggregate is
built from: for VQA and classification accuracy the row's value is their mean; for CIDEr-D
they are pycocoevalcap's per-image scores, whose document frequencies come from the row's
whole corpus of queries (so a query's CIDEr-D depends on the others; their mean is the row's
value); BLEU-4's are per-image BLEU-4 (their mean is not the corpus BLEU-4); ROUGE-L's mean
is the row's value. Writing records changes nothing in ``icl_results.json``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drum.data.example import Example
from drum.embed.base import Embedder
from drum.embed.cache import EmbeddingCache
from drum.embed.example_embeddings import ExampleEmbeddings
from drum.eval.icl_config import (
    ZERO_SHOT,
    ICLEvalConfig,
    check_embedders,
)
from drum.eval.records import (
    QUERIES_FILE,
    write_query_records,
)
from drum.eval.task_data import DatasetReader, TaskData, load_task_data
from drum.feedback.cache import FeedbackCache
from drum.lvlm.base import LVLM
from drum.lvlm.context import ContextOverflowError
from drum.lvlm.prompt import ICLPrompt, PromptTemplate, build_prompt
from drum.lvlm.sharded import counts_over_ranks, generate_sharded
from drum.metrics.registry import MetricSpec, get_metric
from drum.metrics.stats import bootstrap_ci, bootstrap_ci_corpus, bootstrap_ci_summed
from drum.results import Estimate
from drum.retrieve.retriever import DemonstrationRetriever
from drum.retrieve.strategies import RetrievalConfig
from drum.tasks.spec import TaskSpec
from drum.utils.distributed import DistContext
from drum.utils.io import atomic_write_json
from drum.utils.provenance import provenance

log = logging.getLogger(__name__)

RESULTS_FILE = "icl_results.json"
BOOTSTRAP_SEED = 0
CONVENTIONS = {
    "seed": "null where no seed can change the row: zero-shot, and similarity strategies "
    "(unless order='random'), which run once whatever the seeds",
    "zero-shot": "strategy 'zero-shot', shots 0: one row per task, shared by all strategies",
    "ci95": "percentile bootstrap over queries, same resamples for every row of a task",
    "shots": "k-shot demos are the k most similar of the deepest retrieval (a prefix of the "
    "draw for random/fixed)",
    "truncated_prompts": "prompts the LVLM shortened to fit its context by dropping their "
    "oldest demonstrations (dropped_demos in all): 0 unless config.lvlm.context_overflow is "
    "'drop_demos' (the default 'error' refuses such a prompt); null for an LVLM that does not "
    "report it",
}


def demos_for_shots(demo_ids: Sequence[str], k: int, order: str) -> tuple[str, ...]:
    """The ``k``-shot demonstrations (prompt order) inside a deeper retrieval ``demo_ids``.

    ``similar_last`` lists the best match last, so the ``k`` best are the last ``k``;
    ``similar_first`` lists it first. A random order has no such nested subsets.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    if k == 0:
        return ()
    if order == "similar_last":
        return tuple(demo_ids[-k:])
    if order == "similar_first":
        return tuple(demo_ids[:k])
    raise ValueError(f"order {order!r} has no nested k-shot subsets; retrieve for each k")


DemoSet = tuple[tuple[str, ...], tuple[float, ...]]  # demo ids, their retrieval scores


def _demo_sets(
    retriever: DemonstrationRetriever,
    queries: Sequence[Example],
    query_embeddings: ExampleEmbeddings | None,
    shots: Sequence[int],
    order: str,
) -> dict[int, list[DemoSet]]:
    """Per shot count, every query's demonstration ids in prompt order with the scores the
    retriever ranked them by (the same slice of ``Retrieval.scores``)."""
    if order == "random":
        return {
            k: [(r.demo_ids, r.scores) for r in retriever.retrieve(queries, query_embeddings, k=k)]
            for k in shots
        }
    deepest = retriever.retrieve(queries, query_embeddings, k=max(shots))
    return {
        k: [
            (demos_for_shots(r.demo_ids, k, order), demos_for_shots(r.scores, k, order))
            for r in deepest
        ]
        for k in shots
    }


@dataclass(frozen=True)
class FeedbackLookup:
    """Reads LVLM feedback scores from a ``FeedbackCache`` for the per-query records; never
    scores anything itself.

    ``s(c) = v(a | c, q) - v(a | q)`` as ``drum.feedback.scorer.score_feedback`` defines it,
    ``v`` the per-token mean log-likelihood (``length_normalised``, the default) or the sum.
    Keys are ``(cache_model_key(lvlm, template), query id, candidate id, query.answer)``.
    """

    cache: FeedbackCache
    length_normalised: bool = True

    def score(
        self, lvlm: LVLM, query: Example, candidate_id: str, template: PromptTemplate
    ) -> float | None:
        """The cached ``s(candidate)`` for ``query``, or None unless both terms are cached."""
        from drum.feedback.scorer import cache_model_key

        model = cache_model_key(lvlm, template)
        zero = self.cache.get((model, query.id, None, query.answer))
        with_demo = self.cache.get((model, query.id, candidate_id, query.answer))
        if zero is None or with_demo is None:
            return None
        if self.length_normalised:
            return with_demo.mean - zero.mean
        return with_demo.sum - zero.sum


def score_predictions(
    predictions: Mapping[str, str],
    references: Mapping[str, Sequence[str]],
    specs: Sequence[MetricSpec],
    bootstrap_resamples: int = 1000,
    corpus_bootstrap_resamples: int = 200,
    corpus_ci: str = "rescore",
    per_query: bool = False,
) -> tuple[dict[str, dict[str, Any]], dict[str, list[float]]]:
    """``{metric: {"value": v, "ci95": [low, high]}}`` for every spec, in spec order, and, when
    ``per_query``, ``{metric: per-query scores in the key order of predictions}``
    (``MetricSpec.score_corpus``'s per-example scores; ``{}`` otherwise)."""
    metrics: dict[str, dict[str, Any]] = {}
    scores: dict[str, list[float]] = {}
    for spec in specs:
        rescore = spec.level == "corpus" and not (
            corpus_ci == "fixed_statistics" and spec.corpus_is_mean
        )
        if rescore and spec.statistics is not None and spec.from_statistics is not None:
            # A function of summed per-example counts (BLEU): the same resamples, summed.
            value, low, high = bootstrap_ci_summed(
                spec.statistics(predictions, references),
                spec.from_statistics,
                n_resamples=corpus_bootstrap_resamples,
                seed=BOOTSTRAP_SEED,
            )
            if per_query:
                scores[spec.name] = spec.score_corpus(predictions, references)[1]
        elif rescore:
            # A corpus metric is not a mean of per-example scores: rescore every resample.
            value, low, high = bootstrap_ci_corpus(
                spec.fn,
                predictions,
                references,
                n_resamples=corpus_bootstrap_resamples,
                seed=BOOTSTRAP_SEED,
            )
            if per_query:
                scores[spec.name] = spec.score_corpus(predictions, references)[1]
        else:
            value, per_example = spec.score_corpus(predictions, references)
            _, low, high = bootstrap_ci(
                per_example, n_resamples=bootstrap_resamples, seed=BOOTSTRAP_SEED
            )
            scores[spec.name] = per_example
        metrics[spec.name] = Estimate(float(value), float(low), float(high)).to_json()
    return metrics, scores if per_query else {}


@dataclass(frozen=True)
class _TaskRun:
    """What every row of one task's evaluation shares."""

    data: TaskData
    lvlm: LVLM
    config: ICLEvalConfig
    specs: tuple[MetricSpec, ...]
    progress: bool
    records: list[dict[str, Any]] | None  # per-query records are appended here (None: none)
    feedback: FeedbackLookup | None
    context: DistContext | None


@dataclass(frozen=True)
class _RowPlan:
    """One row to generate: its key and its prompts (aligned with the task's queries)."""

    strategy: str
    shots: int
    seed: int | None
    prompts: list[ICLPrompt]
    demo_sets: Sequence[DemoSet] | None = None  # None at zero-shot
    similarity: bool = False  # whether the demo sets' scores are similarities


def _row(run: _TaskRun, plan: _RowPlan) -> dict[str, Any]:
    """Generate and score one row; with ``run.records`` (a list) append its per-query records
    (module docstring)."""
    task, queries, lvlm, specs = run.data.spec, run.data.queries, run.lvlm, run.specs
    strategy, shots, seed, prompts = plan.strategy, plan.shots, plan.seed, plan.prompts
    assert task.max_new_tokens is not None  # TaskSpec.__post_init__ resolves the default
    started = time.perf_counter()
    before = _context_counts(lvlm)
    # Under a launcher each rank generates its block of whole batches (drum.lvlm.sharded).
    try:
        replies = generate_sharded(
            lvlm, prompts, task.max_new_tokens, run.config.batch_size, run.context, run.progress
        )
    except ContextOverflowError as error:  # which row, for a message the CLI shows as it is
        label = strategy if shots == 0 else f"{strategy} {shots}-shot seed={seed}"
        raise ContextOverflowError(f"task {task.name!r}, {label}: {error}") from error
    counts = None if before is None else _difference(_context_counts(lvlm), before)
    truncated, dropped = counts_over_ranks(counts, run.context) or (None, None)
    if len(replies) != len(prompts):
        raise RuntimeError(f"the LVLM returned {len(replies)} replies to {len(prompts)} prompts")
    metric, per_query = score_predictions(
        {query.id: reply for query, reply in zip(queries, replies, strict=True)},
        {query.id: list(query.answers) for query in queries},
        specs,
        run.config.bootstrap_resamples,
        run.config.corpus_bootstrap_resamples,
        run.config.corpus_ci,
        per_query=run.records is not None,
    )
    if run.records is not None:
        feedback = run.feedback  # bound once: read per demonstration of every query
        for i, (query, reply) in enumerate(zip(queries, replies, strict=True)):
            ids, ranks = plan.demo_sets[i] if plan.demo_sets is not None else ((), ())
            run.records.append(
                {
                    "task": task.name,
                    "strategy": strategy,
                    "shots": shots,
                    "seed": seed,
                    "query_id": query.id,
                    "demo_ids": list(ids),
                    "similarity": [float(r) for r in ranks] if plan.similarity else None,
                    "feedback": [
                        feedback.score(lvlm, query, demo_id, task.template)
                        if feedback is not None
                        else None
                        for demo_id in ids
                    ],
                    "prediction": reply,
                    "references": list(query.answers),
                    "scores": {name: values[i] for name, values in per_query.items()},
                    "score": per_query[specs[0].name][i],
                }
            )
    row = {
        "task": task.name,
        "strategy": strategy,
        "shots": shots,
        "seed": seed,
        "metric": metric,
        "n_queries": len(queries),
        "truncated_prompts": truncated,
        "dropped_demos": dropped,
        "seconds": round(time.perf_counter() - started, 3),
    }
    if truncated:
        log.warning(
            "%s %s %d-shot seed=%s: %d of %d prompts lost %d demonstrations to the context limit",
            task.name, strategy, shots, seed, truncated, len(prompts), dropped,
        )  # fmt: skip
    primary = metric[specs[0].name]
    log.info(
        "%s %s %d-shot seed=%s: %s %.3f [%.3f, %.3f]",
        task.name, strategy, shots, seed, specs[0].name, primary["value"], *primary["ci95"],
    )  # fmt: skip
    return row


def _context_counts(lvlm: LVLM) -> tuple[int, int] | None:
    """The LVLM's running counts of prompts cut to fit its context and of demonstrations
    dropped (``LVLM.truncated_prompts`` / ``dropped_demos``); None if it keeps none."""
    truncated, dropped = lvlm.truncated_prompts, lvlm.dropped_demos
    if truncated is None or dropped is None:
        return None
    return truncated, dropped


def _difference(after: tuple[int, int] | None, before: tuple[int, int]) -> tuple[int, int]:
    assert after is not None
    return after[0] - before[0], after[1] - before[1]


def check_eval(
    tasks: Sequence[TaskSpec | TaskData],
    config: ICLEvalConfig,
    embedders: Collection[str] = (),
    verify_images: bool = False,
) -> list[TaskData]:
    """Raise ``ValueError`` for a run that cannot succeed, before any model is loaded; return
    every task's data, read and checked once (``load_task_data``), for ``run_icl_eval``.

    ``embedders``: the names of the embedders the run will get (a mapping's keys will do).
    ``verify_images``: decode every image while reading (``load_task_data``).
    """
    names = [task.name for task in tasks]
    if not tasks:
        raise ValueError("no tasks to evaluate")
    if len(set(names)) != len(names):
        raise ValueError(f"task names repeat: {names}")
    check_embedders(config, embedders)
    reader = DatasetReader(verify_images)  # a file several tasks share: read and warned once
    return [_task_data(task, config, verify_images, reader) for task in tasks]


def _task_data(
    task: TaskSpec | TaskData,
    config: ICLEvalConfig,
    verify_images: bool = False,
    reader: DatasetReader | None = None,
) -> TaskData:
    """``task`` as loaded for ``config``: as given when it was, else read and checked now."""
    if isinstance(task, TaskData):
        if task.fits(config):
            return task
        task = task.spec
    return load_task_data(task, config, verify_images, reader)


def evaluate_icl(
    task: TaskSpec | TaskData,
    lvlm: LVLM,
    config: ICLEvalConfig,
    embedders: Mapping[str, Embedder] | None = None,
    cache: EmbeddingCache | None = None,
    progress: bool = True,
    records: list[dict[str, Any]] | None = None,
    feedback: FeedbackLookup | None = None,
    context: DistContext | None = None,
) -> list[dict[str, Any]]:
    """One task's result rows (conventions in the module docstring).

    ``task``: a spec (read and checked here) or its ``TaskData`` (``check_eval`` returns
    them; used as it is when loaded for ``config``). ``records``: a list to append the
    per-query records to (module docstring; none kept when None); ``feedback``: where their
    feedback scores are looked up. ``context``: the ranks of a ``torchrun`` job; each
    generates its share of every row's prompts and every rank returns the rows (and records)
    one process returns (default: one process).

    ``embedders``: name -> embedder; each similarity strategy uses the one its spec names
    (``"default"`` unless it says otherwise).

    Row: ``{task, strategy, shots, seed, metric: {name: {value, ci95}}, n_queries,
    truncated_prompts, dropped_demos, seconds}``; zero-shot first, then strategies in config
    order, seeds, shot counts. ``truncated_prompts``: how many of the row's prompts the LVLM
    cut to fit its context (``CONVENTIONS``).
    """
    embedders = embedders or {}
    check_embedders(config, embedders)
    data = _task_data(task, config)
    pool, queries, template = data.pool, data.queries, data.spec.template
    specs = tuple(get_metric(name) for name in data.spec.metrics)
    run = _TaskRun(data, lvlm, config, specs, progress, records, feedback, context)
    rows = []
    if 0 in config.shots:
        prompts = [build_prompt([], query, template) for query in queries]
        rows.append(_row(run, _RowPlan(ZERO_SHOT, 0, None, prompts)))
    if not config.demo_shots:
        return rows
    # (pool, queries) embeddings per embedder name, computed once for all its strategies (the
    # parts they compare: image and text, and / or joint).
    # Rank 0 embeds into the cache first; the other ranks then read the same vectors.
    embeddings: dict[str, tuple[ExampleEmbeddings, ExampleEmbeddings]] = (
        context or DistContext()
    ).main_first(
        lambda: {
            name: (
                ExampleEmbeddings.compute(
                    pool, embedders[name], cache, progress, config.embedder_parts(name)
                ),
                ExampleEmbeddings.compute(
                    queries, embedders[name], cache, progress, config.embedder_parts(name)
                ),
            )
            for name in config.required_embedders
        }
    )
    by_id = {example.id: example for example in pool}
    for strategy in config.strategies:
        seeded = config.is_seeded(strategy)
        seeds: tuple[int | None, ...] = config.seeds if seeded else (strategy.train_seed,)
        for seed in seeds:
            retrieval_config = RetrievalConfig(
                strategy=strategy,
                k=config.max_shots,
                order=config.order,
                image_weight=config.image_weight,
                # A train seed only labels the row: unseeded retrieval always runs with seed 0.
                seed=seed if seeded and seed is not None else 0,
            )
            pool_embeddings = query_embeddings = None
            if strategy.uses_similarity:
                pool_embeddings, query_embeddings = embeddings[strategy.embedder]
            retriever = DemonstrationRetriever(
                pool if pool_embeddings is None else pool_embeddings,
                retrieval_config,
                exclusions=data.exclusions,  # the task's image hashes, computed once
            )
            demo_sets = _demo_sets(
                retriever, queries, query_embeddings, config.demo_shots, config.order
            )
            for k in config.demo_shots:
                prompts = [
                    build_prompt([by_id[i] for i in ids], query, template)
                    for (ids, _), query in zip(demo_sets[k], queries, strict=True)
                ]
                plan = _RowPlan(
                    strategy.name, k, seed, prompts, demo_sets[k], strategy.uses_similarity
                )
                rows.append(_row(run, plan))
    return rows


def _model_record(model: LVLM | Embedder) -> dict[str, Any]:
    # Embedders declare no name; an LVLM's is ``LVLM.name`` (its class name by default).
    return {
        "name": str(getattr(model, "name", type(model).__name__)),
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "fingerprint": model.fingerprint,
    }


def run_icl_eval(
    tasks: Sequence[TaskSpec | TaskData],
    lvlm: LVLM,
    config: ICLEvalConfig,
    embedders: Mapping[str, Embedder] | None,
    out_dir: str | os.PathLike[str],
    cache: EmbeddingCache | None = None,
    progress: bool = True,
    records: bool = True,
    feedback: FeedbackLookup | None = None,
    context: DistContext | None = None,
) -> dict[str, Any]:
    """Evaluate every task, write ``out_dir/icl_results.json`` atomically and render the report.

    With ``records`` the per-query records go to ``out_dir/icl_queries.jsonl`` (module
    docstring), their feedback scores looked up in ``feedback`` when given; the results JSON
    is the same either way. ``context``: under a launcher every rank generates its share
    (``evaluate_icl``) and only rank 0 writes the files; every rank returns what rank 0 wrote.

    ``tasks``: specs, or the ``TaskData`` that ``check_eval`` returned (not read again).
    ``embedders`` as in ``evaluate_icl``; the JSON records each under its name
    (``config.embedders``). Returns the results exactly as written (read back from the file).

    Example::

        tasks = list(world_tasks("world", "test").values())
        results = run_icl_eval(
            tasks, HFLVLM("models/lvlm"), ICLEvalConfig(strategies=("random", "concat")),
            {"default": HFDualEncoder("models/embedder")}, "results/",
        )
        results["rows"][0]  # {task, strategy, shots, seed, metric: {name: {value, ci95}}, ...}
    """
    from drum.eval.report import render_report

    embedders = embedders or {}
    loaded = check_eval(tasks, config, embedders)
    started = time.perf_counter()
    rows = []
    kept: list[dict[str, Any]] | None = [] if records else None
    for data in loaded:
        rows.extend(
            evaluate_icl(
                data, lvlm, config, embedders, cache, progress, kept, feedback, context=context
            )
        )
    results = {
        "config": {
            **config.to_dict(),
            # Each task with the digests of its files as evaluated (drum report checks them).
            "tasks": [{**data.spec.to_dict(), "data_sha256": data.data_sha256} for data in loaded],
            "lvlm": {
                **_model_record(lvlm),
                # How the LVLM treats prompts longer than its context (None: it does not say).
                "context_length": lvlm.context_length,
                "context_overflow": lvlm.context_overflow,
            },
            "embedders": {name: _model_record(model) for name, model in embedders.items()},
            "cache": str(cache.directory.resolve()) if cache is not None else None,
            "conventions": CONVENTIONS,
        },
        "rows": rows,
        "seconds": round(time.perf_counter() - started, 3),
        "provenance": provenance(),
    }
    path = Path(out_dir) / RESULTS_FILE
    context = context or DistContext()
    if context.is_main:  # every rank holds the same rows and records; one writes them
        if kept is not None:
            write_query_records(Path(out_dir) / QUERIES_FILE, kept)
        atomic_write_json(path, results)
        render_report(path)
    context.barrier()  # the files are written
    return json.loads(path.read_text(encoding="utf-8"))

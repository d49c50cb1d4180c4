"""LVLM feedback scoring: batched + cached ``score_feedback`` vs a naive one-prompt-at-a-time loop.

Both sides compute ``s(c) = log p(a | c, q) - log p(a | q)`` (per-token means) for the SAME
``--queries`` queries x ``--candidates`` random pool candidates each:

(a) ``score_feedback`` with ``FeedbackConfig(batch_size=32)`` and a fresh on-disk
    ``FeedbackCache`` on an ``HFLVLM`` with its image feature cache (each query's prompts are
    batched together, its zero-shot term scored once, each image encoded once);
(b) a naive loop on an ``HFLVLM(image_feature_cache_size=0)``: every (query, candidate) pair
    scores its one-shot prompt and, again, its zero-shot prompt, one prompt per call
    (``lvlm.score([prompt], [answer], batch_size=1)``), encoding its images every time;
(c) (a) repeated with a fresh ``FeedbackCache`` object on (a)'s file: a warm cache, nothing to
    score.

(a) and (b) are timed alternately over chunks of ``--chunk`` queries, so that load from other
processes hits both alike, in ``--rounds`` rounds (each with (a) cold again: a fresh model
object and cache); seconds are per round, and ``speedup`` is (b)'s total time over the row's
(``meta.round_speedups`` has each round's).

(d) scaling: (a)'s work in freshly spawned processes, 1 process x 2 torch threads vs 2
processes x 1 thread (the queries split into 2 shards), and 1 x 1 for reference, alternated
over ``--scaling-rounds`` rounds; ``vs_1_process`` is the 1 x 2 time over the row's (for the
2-process row: the throughput ratio of 2 processes to 1), ``vs_1_thread`` the 1 x 1 time over
the row's. Timed from a barrier after the model is loaded to the last worker's end.

The script exits 1 unless every ``s(c)`` of (a), (d) and (b) agree within 1e-4 and (c) scores
no prompt. Model: ``--model`` (default: the shipped built-in LVLM, ``drum/assets/builtin/lvlm``);
queries from ``<world>/vqa/val.jsonl``, candidates from ``<world>/vqa/pool.jsonl`` (default
world ``runs/demo/world``). Without a demo run a small generated world stands in (and, should
the default model be missing, a random-weights built-in LVLM: speed does not depend on the
weights); ``meta.model_source`` says which model ran.

Usage: ``python benchmarks/bench_feedback.py [--quick] [--queries N] [--candidates M]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import REPO_ROOT, report

from drum.data import read_examples
from drum.data.example import Example
from drum.feedback import FeedbackCache, FeedbackConfig, QueryFeedback, score_feedback
from drum.lvlm.base import LVLM
from drum.lvlm.hf import HFLVLM
from drum.lvlm.prompt import build_prompt
from drum.testing import SpyLVLM

TOLERANCE = 1e-4
# The shipped built-in LVLM (what `make demo` uses).
DEFAULT_MODEL = REPO_ROOT / "drum" / "assets" / "builtin" / "lvlm"
DEFAULT_WORLD = REPO_ROOT / "runs" / "demo" / "world"


def vision_encodings(lvlm: HFLVLM) -> list[int]:
    """A list that grows by the batch size of every vision-tower call (images encoded)."""
    calls: list[int] = []

    def hook(module: torch.nn.Module, args: tuple, kwargs: dict, output: object) -> None:
        pixels = args[0] if args else kwargs["pixel_values"]
        calls.append(int(pixels.shape[0]))

    lvlm.model.model.vision_tower.register_forward_hook(hook, with_kwargs=True)
    return calls


def stand_ins(workdir: Path, need_model: bool, need_world: bool) -> tuple[Path, Path]:
    """A random-weights built-in LVLM and a small world, for machines without a demo run."""
    model_dir, world_dir = workdir / "lvlm", workdir / "world"
    if need_world:
        from drum.builtin.world.generate import WorldConfig, make_world

        make_world(world_dir, WorldConfig(n_train=200, n_pool=500, n_val=200, n_test=20), False)
    if need_model:
        from drum.builtin.embedder import BuiltinEmbedderConfig, build_clip
        from drum.builtin.lvlm.model import BuiltinLVLMArchitecture, build_builtin_lvlm
        from drum.builtin.world.language import vocabulary

        torch.manual_seed(0)
        clip, clip_processor = build_clip(BuiltinEmbedderConfig(), vocabulary())
        clip.save_pretrained(workdir / "clip")
        clip_processor.save_pretrained(workdir / "clip")
        model, processor = build_builtin_lvlm(BuiltinLVLMArchitecture(), workdir / "clip")
        model.save_pretrained(model_dir)
        processor.save_pretrained(model_dir)
    return model_dir, world_dir


def naive_feedback(
    lvlm: LVLM, queries: Sequence[Example], candidates: dict[str, list[Example]]
) -> dict[tuple[str, str], float]:
    """``s(c)`` the obvious way: two single-prompt forward passes per (query, candidate)."""
    scores = {}
    for query in queries:
        for candidate in candidates[query.id]:
            (one,) = lvlm.score([build_prompt([candidate], query)], [query.answer], batch_size=1)
            (zero,) = lvlm.score([build_prompt([], query)], [query.answer], batch_size=1)
            scores[(query.id, candidate.id)] = one.mean - zero.mean
    return scores


def _shard_worker(
    rank: int,
    model_dir: str,
    world_dir: str,
    shards: list[list[tuple[int, list[int]]]],
    batch_size: int,
    threads: int,
    out_dir: str,
    barrier: Any,
    results: Any,
) -> None:
    """One process of the scaling row: score shard ``rank`` (``(val index, pool indices)``
    pairs) on a fresh ``HFLVLM`` with ``threads`` torch threads and a fresh on-disk cache.
    Only indices and paths cross the process boundary; each worker reads the world itself.
    Timing starts at a barrier after loading, so ``results`` gets ``(start, end, scores)``
    of the scoring alone (start/end on ``time.perf_counter``, shared by processes of one
    machine)."""
    torch.set_num_threads(threads)
    val = read_examples(Path(world_dir) / "vqa" / "val.jsonl")
    pool = read_examples(Path(world_dir) / "vqa" / "pool.jsonl")
    queries = [val[i] for i, _ in shards[rank]]
    candidates = {val[i].id: [pool[j] for j in picks] for i, picks in shards[rank]}
    lvlm = HFLVLM(model_dir)
    cache = FeedbackCache(Path(out_dir) / f"shard-{rank}.jsonl")
    config = FeedbackConfig(batch_size=batch_size)
    barrier.wait()
    started = time.perf_counter()
    feedback = score_feedback(lvlm, queries, candidates, cache, config, progress=False)
    ended = time.perf_counter()
    scores = {
        f"{f.query_id}|{c}": s
        for f in feedback
        for c, s in zip(f.candidate_ids, f.scores, strict=True)
    }
    results.put((rank, started, ended, scores))


def scaling_run(
    processes: int,
    threads: int,
    model_dir: Path,
    world_dir: Path,
    work: list[tuple[int, list[int]]],
    batch_size: int,
    out_dir: Path,
) -> tuple[float, dict[str, float]]:
    """Score ``work`` in ``processes`` spawned processes of ``threads`` torch threads each
    (queries split into contiguous shards): wall seconds from the first worker's start to the
    last one's end (model loading excluded), and every ``s(c)`` by ``"query|candidate"``."""
    context = torch.multiprocessing.get_context("spawn")
    size = -(-len(work) // processes)
    shards = [work[i * size : (i + 1) * size] for i in range(processes)]
    barrier, results = context.Barrier(processes), context.Queue()
    workers = [
        context.Process(
            target=_shard_worker,
            args=(
                rank,
                str(model_dir),
                str(world_dir),
                shards,
                batch_size,
                threads,
                str(out_dir),
                barrier,
                results,
            ),
        )  # fmt: skip
        for rank in range(processes)
    ]
    for worker in workers:
        worker.start()
    done = [results.get(timeout=1800) for _ in workers]
    for worker in workers:
        worker.join()
        if worker.exitcode != 0:
            sys.exit(f"scaling worker exited with {worker.exitcode}")
    scores: dict[str, float] = {}
    for _, _, _, shard_scores in done:
        scores.update(shard_scores)
    return max(end for _, _, end, _ in done) - min(start for _, start, _, _ in done), scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 queries x 5 candidates")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="HFLVLM directory")
    parser.add_argument("--world", type=Path, default=DEFAULT_WORLD, help="world directory")
    parser.add_argument("--queries", type=int, default=40, help="queries from vqa/val.jsonl")
    parser.add_argument("--candidates", type=int, default=20, help="pool candidates per query")
    parser.add_argument("--batch-size", type=int, default=32, help="batched scoring, row (a)")
    # One thread by default: the built-in LVLM's ops are tiny, so intra-op threads gain little,
    # and on a busy machine their spin-waits slowed the many small naive calls 10-30x (noise
    # that would swamp the ratio).
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--seed", type=int, default=0, help="candidate sampling seed")
    parser.add_argument("--chunk", type=int, default=5, help="queries per alternation of a/b")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds of (a) vs (b), each with (a) cold again; seconds are averaged and the "
        "speed-up is the ratio of the totals (the naive loop alone varies by 1.5x between "
        "runs on this machine)",
    )
    parser.add_argument(
        "--scaling-rounds",
        type=int,
        default=2,
        help="rounds of the scaling rows (1 process x 2 threads vs 2 processes x 1 thread, "
        "alternated); 0 skips them",
    )
    args = parser.parse_args()
    n_queries, n_candidates = (10, 5) if args.quick else (args.queries, args.candidates)
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        model_dir, world_dir = args.model, args.world
        # Stand-ins only replace the defaults; a path the user named must exist.
        need_model = model_dir == DEFAULT_MODEL and not (model_dir / "config.json").is_file()
        need_world = world_dir == DEFAULT_WORLD and not (world_dir / "vqa").is_dir()
        if need_model or need_world:
            fallback_model, fallback_world = stand_ins(workdir, need_model, need_world)
            model_dir = fallback_model if need_model else model_dir
            world_dir = fallback_world if need_world else world_dir

        val = read_examples(world_dir / "vqa" / "val.jsonl")
        pool = read_examples(world_dir / "vqa" / "pool.jsonl")
        if n_queries > len(val) or n_candidates > len(pool):
            sys.exit(f"asked for {n_queries} x {n_candidates}; {len(val)} val, {len(pool)} pool")
        rng = np.random.default_rng(args.seed)
        query_rows = [int(i) for i in rng.choice(len(val), n_queries, replace=False)]
        candidate_rows = [
            [int(j) for j in rng.choice(len(pool), n_candidates, replace=False)] for _ in query_rows
        ]
        queries = [val[i] for i in query_rows]
        candidates = {
            q.id: [pool[j] for j in rows] for q, rows in zip(queries, candidate_rows, strict=True)
        }
        pairs = n_queries * n_candidates

        # (a) batched + cached, on a fresh model object (empty image feature cache), and (b)
        # naive: no image feature cache, one prompt per call, zero-shot scored per pair. Timed
        # alternately over chunks of queries (which goes first alternates too), so that load
        # from other processes on a shared machine hits both sides alike. (a)'s feature cache
        # and on-disk cache carry over from chunk to chunk, as in one run over all queries.
        # Each of ``--rounds`` rounds starts (a) cold again: a fresh model object and cache.
        naive = HFLVLM(model_dir, image_feature_cache_size=0)
        naive_images = vision_encodings(naive)
        naive_counting = SpyLVLM(naive)
        config = FeedbackConfig(batch_size=args.batch_size)
        round_seconds: list[tuple[float, float]] = []
        round_differences: list[float] = []
        for round_number in range(args.rounds):
            batched = HFLVLM(model_dir)
            batched_images = vision_encodings(batched)
            # Spies record every prompt that reaches ``score``: row (c) must record none.
            counting = SpyLVLM(batched)
            cache_path = workdir / f"feedback-{round_number}.jsonl"
            cache = FeedbackCache(cache_path)
            fast: list[QueryFeedback] = []
            slow: dict[tuple[str, str], float] = {}
            naive_counting.scored.clear()
            naive_images.clear()
            fast_seconds = slow_seconds = 0.0
            for number, start in enumerate(range(0, n_queries, args.chunk)):
                chunk = queries[start : start + args.chunk]
                for side in "ab" if (number + round_number) % 2 == 0 else "ba":
                    started = time.perf_counter()
                    if side == "a":
                        fast += score_feedback(
                            counting, chunk, candidates, cache, config, progress=False
                        )
                        fast_seconds += time.perf_counter() - started
                    else:
                        slow.update(naive_feedback(naive_counting, chunk, candidates))
                        slow_seconds += time.perf_counter() - started
            round_seconds.append((fast_seconds, slow_seconds))
            round_differences.append(
                max(
                    abs(score - slow[(f.query_id, candidate)])
                    for f in fast
                    for candidate, score in zip(f.candidate_ids, f.scores, strict=True)
                )
            )
        fast_seconds = sum(a for a, _ in round_seconds)
        slow_seconds = sum(b for _, b in round_seconds)
        fast_prompts = len(counting.scored)
        if naive.feature_cache:  # size 0 must keep nothing between calls
            sys.exit(f"image_feature_cache_size=0 kept {len(naive.feature_cache)} encodings")

        # (c) warm on-disk cache: a fresh cache object reading (a)'s file, as a rerun would.
        encoded_before_warm = sum(batched_images)
        started = time.perf_counter()
        warm = score_feedback(
            counting, queries, candidates, FeedbackCache(cache_path), config, progress=False
        )
        warm_seconds = time.perf_counter() - started
        warm_prompts = len(counting.scored) - fast_prompts
        warm_images = sum(batched_images) - encoded_before_warm

        # (d) scaling: the same work (every query, split into 2 query shards) in 1 process x 2
        # threads vs 2 processes x 1 thread, fresh processes each round, alternated.
        work = list(zip(query_rows, candidate_rows, strict=True))
        # 1 process x 1 thread runs too: the reference for what either setup gains.
        scaling: dict[tuple[int, int], list[float]] = {(1, 1): [], (1, 2): [], (2, 1): []}
        scaling_difference = 0.0
        for number in range(args.scaling_rounds):
            setups = [(1, 1), (1, 2), (2, 1)]
            setups = setups if number % 2 == 0 else setups[::-1]
            for processes, threads in setups:
                out = workdir / f"scaling-{number}-{processes}x{threads}"
                out.mkdir()
                seconds, scores = scaling_run(
                    processes, threads, model_dir, world_dir, work, args.batch_size, out
                )
                scaling[(processes, threads)].append(seconds)
                scaling_difference = max(
                    scaling_difference,
                    *(abs(v - slow[tuple(k.split("|", 1))]) for k, v in scores.items()),
                )

    max_difference = max(round_differences)
    rounds = args.rounds
    rows = [
        {
            "case": "(a) batched, cold cache",
            "prompts": fast_prompts,
            "images_encoded": encoded_before_warm,
            "seconds": fast_seconds / rounds,
            "pairs_per_s": pairs * rounds / fast_seconds,
            "speedup": slow_seconds / fast_seconds,
        },
        {
            "case": "(b) naive loop",
            "prompts": len(naive_counting.scored),
            "images_encoded": sum(naive_images),
            "seconds": slow_seconds / rounds,
            "pairs_per_s": pairs * rounds / slow_seconds,
            "speedup": 1.0,
        },
        {
            "case": "(c) batched, warm cache",
            "prompts": warm_prompts,
            "images_encoded": warm_images,
            "seconds": warm_seconds,
            "pairs_per_s": pairs / warm_seconds,
            "speedup": slow_seconds / warm_seconds,
        },
    ]
    if args.scaling_rounds:
        one, two = (sum(scaling[key]) for key in ((1, 2), (2, 1)))
        single = sum(scaling[(1, 1)])
        for (processes, threads), total in (((1, 1), single), ((1, 2), one), ((2, 1), two)):
            rows.append(
                {
                    "case": f"(d) {processes} process{'es' if processes > 1 else ''} x "
                    f"{threads} thread{'s' if threads > 1 else ''}, cold cache",
                    "prompts": None,
                    "images_encoded": None,
                    "seconds": total / args.scaling_rounds,
                    "pairs_per_s": pairs * args.scaling_rounds / total,
                    "speedup": None,
                    "vs_1_process": one / total,
                    "vs_1_thread": single / total,
                }
            )
    meta = {
        "model": str(model_dir) if not need_model else "random-weights built-in LVLM",
        "model_source": "stand-in (no demo run)" if need_model else "given/shipped checkpoint",
        "world": str(world_dir) if not need_world else "generated stand-in world",
        "queries": n_queries,
        "candidates": n_candidates,
        "pairs": pairs,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "seed": args.seed,
        "chunk": args.chunk,
        "rounds": rounds,
        "round_seconds_a_b": [list(pair) for pair in round_seconds],
        "round_speedups": [b / a for a, b in round_seconds],
        "max_abs_difference_a_vs_b": max_difference,
        "tolerance": TOLERANCE,
        "warm_equals_cold": warm == fast,
        "scaling_rounds": args.scaling_rounds,
        "scaling_seconds": {f"{p}x{t}": v for (p, t), v in scaling.items()},
        "scaling_throughput_ratio_2_processes_vs_1": (
            sum(scaling[(1, 2)]) / sum(scaling[(2, 1)]) if args.scaling_rounds else None
        ),
        "max_abs_difference_d_vs_b": scaling_difference if args.scaling_rounds else None,
    }
    report("feedback_quick" if args.quick else "feedback", rows, meta)
    if max(max_difference, scaling_difference) > TOLERANCE:
        sys.exit(
            f"batched (a: {max_difference:.3g}, d: {scaling_difference:.3g}) and naive s(c) "
            f"differ by more than {TOLERANCE}"
        )
    if warm_prompts or warm_images or warm != fast:
        sys.exit(
            f"warm cache scored {warm_prompts} prompts, encoded {warm_images} images "
            f"or changed the scores (identical: {warm == fast})"
        )


if __name__ == "__main__":
    main()

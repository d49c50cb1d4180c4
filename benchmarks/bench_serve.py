"""``drum serve`` batching across requests: throughput of ``--max-batch-size 1`` (one request
at a time) vs ``--max-batch-size 16``, side by side on the same model.

Workload: the shipped built-in LVLM served in-process (``create_app`` under uvicorn in a
thread, on 127.0.0.1), ``--clients`` concurrent clients, each a ``ServedLVLM`` with
``concurrency`` 8 (its default), scoring its share of ``--prompts`` one-shot VQA prompts of a
generated world (``drum data make-world``, built into ``--world`` unless there): a score is
two requests (the prompt's length, then the answer's prompt log-probabilities), so each side
answers ``2 x prompts`` requests. The server holds ``clients x 8`` requests at once (no 429).

Each side runs on a server of its own over the one model (an untimed warm-up round first:
image files, the image-feature cache), alternating which side goes first by round over
``--rounds`` rounds. ``requests/s`` is requests over the side's total seconds; ``speedup`` the
throughput over ``max_batch_size`` 1's (``meta.round_speedups``: each round's); ``batches``
and ``passes`` (model passes: scoring forwards, generate calls) count what the engine ran in
the last round, ``mean_batch`` its requests per batch, ``busy_share`` the share of that round's
wall-clock time the engine spent running batches (the rest: HTTP, JSON, images, the clients, in
the same process). The script exits 1 if a score of the
two sides differs by more than 1e-4 (``meta.max_abs_difference``).

Usage: ``OMP_NUM_THREADS=1 python benchmarks/bench_serve.py [--smoke] [--prompts M]
[--clients K]``; ``--smoke`` (or ``--quick``, what ``benchmarks/run.py`` passes) scores 16
prompts in one round: a run of a few seconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from contextlib import AbstractContextManager
from pathlib import Path

import torch
from common import REPO_ROOT, report

from drum.builtin.world.generate import WorldConfig, make_world
from drum.data.jsonl import read_examples
from drum.lvlm.hf import HFLVLM
from drum.lvlm.prompt import ICLPrompt, build_prompt
from drum.lvlm.served import ServedConfig, ServedLVLM
from drum.serve.app import create_app
from drum.serve.background import serve_in_background
from drum.serve.batching import BatchingConfig
from drum.serve.engine import ServeEngine

TOLERANCE = 1e-4
LVLM = REPO_ROOT / "drum" / "assets" / "builtin" / "lvlm"
DEFAULT_WORLD = REPO_ROOT / "runs" / "bench" / "world_serve"
WORLD = WorldConfig(n_train=20, n_pool=400, n_val=20, n_test=20)
CONCURRENCY = 8  # ServedConfig's default: what drum eval / drum mine send at once
SIDES = (1, 16)  # max_batch_size


def serving(engine: ServeEngine, max_concurrent_requests: int) -> AbstractContextManager[str]:
    """``engine``'s app under uvicorn in a thread on a free loopback port; its base URL."""
    return serve_in_background(create_app(engine, max_concurrent_requests))


def workload(world: Path, prompts: int) -> tuple[list[ICLPrompt], list[str]]:
    """``prompts`` one-shot prompts (query i, demonstration i + 1) and their answers."""
    pool = read_examples(world / "vqa" / "pool.jsonl")
    if prompts + 1 > len(pool):
        sys.exit(f"--prompts {prompts}: the world's VQA pool has {len(pool)} examples")
    chosen = pool[: prompts + 1]
    return (
        [build_prompt([chosen[i + 1]], chosen[i]) for i in range(prompts)],
        [chosen[i].answer for i in range(prompts)],
    )


def run_side(
    lvlm: HFLVLM, size: int, wait_ms: float, clients: int, prompts: list, answers: list
) -> tuple[list[float], float, float, ServeEngine]:
    """Every client's scores through a server batching at most ``size``; wall-clock and CPU
    seconds; the engine (its counters)."""
    engine = ServeEngine(lvlm, "builtin", BatchingConfig(size, wait_ms))
    scores: list[list[float]] = [[] for _ in range(clients)]
    with serving(engine, clients * CONCURRENCY) as base_url:

        def client(k: int) -> None:
            config = ServedConfig(base_url, "builtin", cache_dir=None, concurrency=CONCURRENCY)
            lvlm = ServedLVLM(config)
            try:
                results = lvlm.score(prompts[k::clients], answers[k::clients])
            finally:
                lvlm.close()
            scores[k] = [r.sum for r in results]

        threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
        start, cpu = time.perf_counter(), time.process_time()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    # Back in the prompts' order.
    ordered = [0.0] * len(prompts)
    for k in range(clients):
        ordered[k::clients] = scores[k]
    return ordered, seconds, cpu_seconds, engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", "--quick", action="store_true", help="16 prompts, 1 round")
    parser.add_argument("--world", type=Path, default=DEFAULT_WORLD, help="world directory")
    parser.add_argument("--prompts", type=int, default=192, help="prompts scored per side")
    parser.add_argument("--clients", type=int, default=2, help="concurrent ServedLVLM clients")
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds")
    parser.add_argument(
        "--wait-ms", type=float, default=BatchingConfig().batch_wait_ms, help="--batch-wait-ms"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)  # the CPU is shared; one thread per process (benchmarks/README)
    count = 16 if args.smoke else args.prompts
    rounds = 1 if args.smoke else args.rounds
    clients = 1 if args.smoke else args.clients
    if count < 1 or rounds < 1 or clients < 1:
        sys.exit("--prompts, --rounds and --clients must be >= 1")
    make_world(args.world, WORLD, progress=False)  # a world whose card matches is left as is
    prompts, answers = workload(args.world, count)
    lvlm = HFLVLM(LVLM)
    run_side(lvlm, SIDES[-1], args.wait_ms, clients, prompts, answers)  # warm-up, untimed

    seconds: dict[int, list[float]] = {size: [] for size in SIDES}
    cpu: dict[int, list[float]] = {size: [] for size in SIDES}
    engines: dict[int, ServeEngine] = {}
    scores: dict[int, list[float]] = {}
    worst = 0.0
    for number in range(rounds):
        # Which side goes first alternates by round, so load hits both alike.
        for size in SIDES if number % 2 == 0 else SIDES[::-1]:
            got, wall, cpu_seconds, engines[size] = run_side(
                lvlm, size, args.wait_ms, clients, prompts, answers
            )
            seconds[size].append(wall)
            cpu[size].append(cpu_seconds)
            scores[size] = got
        worst = max(worst, *(abs(a - b) for a, b in zip(*scores.values(), strict=True)))

    requests = 2 * count  # a score is two requests
    base = sum(seconds[SIDES[0]])
    rows = []
    for size in SIDES:
        engine = engines[size]
        rows.append(
            {
                "case": "one at a time" if size == 1 else f"batched (at most {size})",
                "max_batch_size": size,
                "requests": requests,
                "seconds": sum(seconds[size]) / rounds,
                "requests/s": requests * rounds / sum(seconds[size]),
                "speedup": base / sum(seconds[size]),
                "batches": engine.batches,
                "passes": engine.passes,
                "mean_batch": engine.requests / engine.batches,
                "largest_batch": engine.largest_batch,
                "busy_share": engine.busy_seconds / seconds[size][-1],
                "cpu_seconds": sum(cpu[size]) / rounds,
            }
        )
    speedups = [a / b for a, b in zip(seconds[SIDES[0]], seconds[SIDES[-1]], strict=True)]
    meta = {
        "lvlm": str(LVLM.relative_to(REPO_ROOT)),
        "world": str(args.world),
        "prompts": count,
        "clients": clients,
        "concurrency": CONCURRENCY,
        "max_concurrent_requests": clients * CONCURRENCY,
        "batch_wait_ms": args.wait_ms,
        "rounds": rounds,
        "round_speedups": speedups,
        "median_round_speedup": statistics.median(speedups),
        "max_abs_difference": worst,
        "tolerance": TOLERANCE,
        "torch_threads": torch.get_num_threads(),
    }
    report("serve_quick" if args.smoke else "serve", rows, meta)
    if worst > TOLERANCE:
        sys.exit(f"scores differ by {worst:.3g} > {TOLERANCE}")


if __name__ == "__main__":
    main()

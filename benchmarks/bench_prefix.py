"""Shared demonstration prefixes on mining's real candidate lists: ``score_feedback`` through
``HFLVLM(share_prefixes=True)`` vs today's batched path (``share_prefixes=False``).

Workload: what round 1 of ``drum mine`` scores on the demo's world (``drum data make-world``
defaults, built into ``--world`` unless it is there): for each task of ``world_tasks(world,
"val")`` named in ``--tasks`` (default: ``vqa``, a third of the demo's mining), the seeded
training queries ``training_queries(pool, MiningConfig().queries_per_task, seed)`` (the first
``--queries`` of them; default all 600), each with the 30 candidates the shipped built-in
embedder retrieves for it (``retrieve_candidates``: ``concat``, itself excluded), scored by the
shipped built-in LVLM with ``FeedbackConfig(candidates=30)``'s batch size and flush chunks, as
``drum mine`` scores them. The subset is a whole task rather than fewer queries per task: the
reuse comes from the queries scored together (600 queries x 30 candidates over a 2,000-example
pool show each candidate about 9 times; 100 of them, twice), so fewer queries would measure
another workload than mining's.

Both sides run ``score_feedback`` on the same lists, alternated task by task (which side goes
first alternates by round) over ``--rounds`` rounds, each side on a fresh model object per
round (cold image-feature cache). Seconds are per round (mean); ``speedup`` is the baseline's
total time over the row's (``meta.round_speedups``: each round's). The script exits 1 if any
``s(c)`` or zero-shot term of the two sides differs by more than 1e-4.

Reuse: ``prompts`` counts one-shot and zero-shot prompts; ``distinct_demonstrations`` the
candidates among them (``reuse`` = distinct / one-shot prompts: 1 means no two prompts share a
demonstration); ``prefixes_run`` the prefixes the shared side computed (a demonstration whose
prompts fall into two ``score`` calls or windows runs twice, one shown once not at all).
``meta.full_lists_reuse`` gives the same ratio over all of round 1's training queries.
``tokens`` counts the token slots of every forward pass (padding included). ``cpu_seconds``
(``time.process_time``, one torch thread) is beside the wall-clock seconds: on a shared machine
it is less disturbed by other processes.

Usage: ``OMP_NUM_THREADS=1 python benchmarks/bench_prefix.py [--quick] [--queries N]``;
``--quick`` runs a small generated world with 8 queries per task and 1 round (a smoke run).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from common import REPO_ROOT, report

from drum.builtin.world.generate import WorldConfig, make_world
from drum.builtin.world.tasks import world_tasks
from drum.data.example import Example
from drum.data.jsonl import read_examples
from drum.embed.hf import HFDualEncoder
from drum.feedback import FeedbackConfig, QueryFeedback, score_feedback
from drum.finetune.config import MiningConfig
from drum.finetune.mining import retrieve_candidates, training_queries
from drum.lvlm.hf import HFLVLM

TOLERANCE = 1e-4
ASSETS = REPO_ROOT / "drum" / "assets" / "builtin"
DEFAULT_WORLD = REPO_ROOT / "runs" / "bench" / "world"
QUICK_WORLD = WorldConfig(n_train=20, n_pool=120, n_val=20, n_test=20)

Lists = list[tuple[str, list[Example], dict[str, list[Example]]]]


def mining_lists(
    world: Path, queries: int | None, mining: MiningConfig, tasks: list[str] | None = None
) -> Lists:
    """Per task: round 1's training queries (the first ``queries``; all if None) and the
    candidates the shipped embedder retrieves for each, as ``drum mine`` retrieves them."""
    embedder = HFDualEncoder(ASSETS / "embedder")
    lists = []
    for task in world_tasks(world, split="val").values():
        if tasks and task.name not in tasks:
            continue
        pool = read_examples(task.pool, verify_images=False, require_answers=True)
        chosen = training_queries(pool, mining.queries_per_task, mining.train.seed)[:queries]
        candidates, _ = retrieve_candidates(
            embedder,
            pool,
            chosen,
            mining.feedback.candidates,
            mining.train.image_weight,
        )
        lists.append((task.name, chosen, candidates))
    return lists


def reuse(lists: Lists) -> dict[str, float]:
    """One-shot prompts, distinct demonstrations (per task: a task's prompts share a template)
    and their ratio."""
    one_shot = sum(len(c) for _, queries, cands in lists for c in cands.values())
    distinct = sum(len({c.id for cs in cands.values() for c in cs}) for _, _, cands in lists)
    return {
        "one_shot_prompts": one_shot,
        "distinct_demonstrations": distinct,
        "reuse": distinct / one_shot,
    }


class Counter:
    """Forward passes of an ``HFLVLM``: token slots run, and rows of prefix passes (KV cache
    on, none given)."""

    def __init__(self, lvlm: HFLVLM) -> None:
        self.tokens = 0
        self.prefixes = 0
        lvlm.model.register_forward_hook(self._count, with_kwargs=True)

    def _count(self, module: Any, args: tuple, kwargs: dict, output: Any) -> None:
        ids = kwargs["input_ids"]
        self.tokens += int(ids.numel())
        if kwargs.get("use_cache") and kwargs.get("past_key_values") is None:
            self.prefixes += int(ids.shape[0])


def run_task(
    lvlm: HFLVLM, queries: list[Example], candidates: dict, config: FeedbackConfig
) -> tuple[list[QueryFeedback], float, float]:
    """One task's feedback as ``drum mine`` scores it (no cache file), its wall-clock and
    CPU seconds."""
    start, cpu = time.perf_counter(), time.process_time()
    feedback = score_feedback(lvlm, queries, candidates, None, config, progress=False)
    return feedback, time.perf_counter() - start, time.process_time() - cpu


def largest_difference(
    a: dict[str, list[QueryFeedback]], b: dict[str, list[QueryFeedback]]
) -> float:
    worst = 0.0
    for name, items in a.items():
        for x, y in zip(items, b[name], strict=True):
            assert x.candidate_ids == y.candidate_ids
            worst = max(worst, abs(x.zero_shot - y.zero_shot))
            worst = max(worst, *(abs(p - q) for p, q in zip(x.scores, y.scores, strict=True)))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small world, 8 queries, 1 round")
    parser.add_argument("--world", type=Path, default=DEFAULT_WORLD, help="world directory")
    parser.add_argument(
        "--queries", type=int, default=600, help="training queries per task (600: all of them)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds")
    parser.add_argument(
        "--tasks",
        nargs="*",
        default=["vqa"],
        help="task names (default: vqa; all: vqa caption classification)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)  # the CPU is shared; one thread per process (benchmarks/README)
    mining = MiningConfig(rounds=1)  # the demo's mining: 30 candidates per training query
    config = mining.feedback
    rounds = 1 if args.quick else args.rounds
    queries = 8 if args.quick else args.queries
    tasks = None if args.quick else args.tasks
    world = args.world
    if args.quick and world == DEFAULT_WORLD:
        world = REPO_ROOT / "runs" / "bench" / "world_quick"
    # make_world leaves a world whose card matches as it is.
    make_world(world, QUICK_WORLD if args.quick else WorldConfig(), progress=False)

    started = time.perf_counter()
    lists = mining_lists(world, queries, mining, tasks)
    subset = reuse(lists)
    full = reuse(mining_lists(world, None, mining, tasks)) if not args.quick else subset
    setup = time.perf_counter() - started
    prompts = subset["one_shot_prompts"] + sum(len(q) for _, q, _ in lists)

    times: dict[bool, list[float]] = {False: [], True: []}
    cpu_times: dict[bool, list[float]] = {False: [], True: []}
    counters: dict[bool, list[Counter]] = {False: [], True: []}
    speedups, cpu_speedups, worst = [], [], 0.0
    for number in range(rounds):
        # Each side on a fresh model (cold image-feature cache), one model for every task as
        # in ``drum mine``.
        models = {side: HFLVLM(ASSETS / "lvlm", share_prefixes=side) for side in (False, True)}
        for side, lvlm in models.items():
            counters[side].append(Counter(lvlm))
        spent = {False: 0.0, True: 0.0}
        cpu_spent = {False: 0.0, True: 0.0}
        results: dict[bool, dict[str, list[QueryFeedback]]] = {False: {}, True: {}}
        # Alternate task by task, and which side starts by round, so load hits both alike.
        for name, task_queries, candidates in lists:
            for side in (False, True) if number % 2 == 0 else (True, False):
                feedback, seconds, cpu = run_task(models[side], task_queries, candidates, config)
                results[side][name] = feedback
                spent[side] += seconds
                cpu_spent[side] += cpu
        worst = max(worst, largest_difference(results[False], results[True]))
        for side in times:
            times[side].append(spent[side])
            cpu_times[side].append(cpu_spent[side])
        speedups.append(spent[False] / spent[True])
        cpu_speedups.append(cpu_spent[False] / cpu_spent[True])

    total = {side: sum(times[side]) for side in times}
    cpu_total = {side: sum(cpu_times[side]) for side in times}
    rows = []
    for side, case in ((False, "batched, whole prompts (today)"), (True, "shared prefixes")):
        rows.append(
            {
                "case": case,
                "prompts": prompts,
                "distinct_demos": subset["distinct_demonstrations"],
                "prefixes_run": counters[side][-1].prefixes,
                "tokens": counters[side][-1].tokens,
                "seconds": total[side] / rounds,
                "prompts/s": prompts * rounds / total[side],
                "speedup": total[False] / total[side],
                "cpu_seconds": cpu_total[side] / rounds,
                "cpu_speedup": cpu_total[False] / cpu_total[side],
            }
        )
    meta = {
        "world": str(world),
        "queries_per_task": queries,
        "tasks": [name for name, _, _ in lists],
        "candidates": config.candidates,
        "batch_size": config.batch_size,
        "flush_every": config.flush_every,
        "rounds": rounds,
        "round_speedups": speedups,
        "median_round_speedup": statistics.median(speedups),
        "round_cpu_speedups": cpu_speedups,
        "max_abs_difference": worst,
        "tolerance": TOLERANCE,
        "reuse": subset,
        "full_lists_reuse": full,
        "torch_threads": torch.get_num_threads(),
        "setup_seconds": setup,
    }
    report("prefix_quick" if args.quick else "prefix", rows, meta)
    if worst > TOLERANCE:
        sys.exit(f"scores differ by {worst:.3g} > {TOLERANCE}")


if __name__ == "__main__":
    main()

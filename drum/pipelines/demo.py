"""``drum demo``: the main job on the built-in default, end to end, every step timed.

1. the built-in world;
2. the built-in embedder and LVLM (the shipped copies when they match the world, else trained);
3. retrieval quality per strategy (do the demonstrations reveal the answer?);
4. DRUM: the embedder fine-tuned on the LVLM's feedback, over rounds of demonstration mining;
5. few-shot ICL evaluation of the LVLM per task x strategy (DRUM's included) x shot count,
   with 95% CIs;
6. the per-query HTML report of that evaluation (``out/report.html``, ``drum report``).

Results are JSON (resolved config, metrics, provenance, per-query records) with markdown
tables and a plot rendered from it, under ``out/results``. A second run reuses the world,
models and embeddings. Every stage is timed: ``out/results/demo_timings.json`` and, at the end,
a table of the stage times (``timings_table``).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table

from drum.builtin.assets import ensure_builtin_models
from drum.builtin.embedder import BuiltinEmbedderConfig
from drum.builtin.lvlm.train import BuiltinLVLMConfig
from drum.builtin.world.generate import WorldConfig, make_world
from drum.builtin.world.tasks import world_tasks
from drum.embed.cache import EmbeddingCache
from drum.embed.hf import HFDualEncoder
from drum.eval.icl import FeedbackLookup, ICLEvalConfig, run_icl_eval
from drum.eval.query_report import build_report
from drum.eval.terminal import icl_tables, quality_tables, rounds_tables
from drum.feedback.cache import FeedbackCache
from drum.feedback.scorer import FeedbackConfig
from drum.finetune.config import MiningConfig, RetrieverTrainConfig
from drum.finetune.mining import mine
from drum.lvlm.hf import HFLVLM
from drum.pipelines.retrieval_quality import (
    RetrievalQualityConfig,
    measure_retrieval_quality,
    quality_table_markdown,
)
from drum.utils.io import atomic_write_json, atomic_write_text
from drum.utils.provenance import provenance

STRATEGIES = ("random", "fixed", "image", "text", "concat", "drum")
# ``demo_timings.json`` keys -> the stage names the timings table shows.
STAGE_NAMES = {
    "world_seconds": "1 world",
    "models_seconds": "2 models",
    "retrieval_seconds": "3 retrieval quality",
    "drum_seconds": "4 DRUM training (mining)",
    "icl_seconds": "5 ICL evaluation",
    "report_seconds": "6 per-query report",
}
QUICK_WORLD = WorldConfig(n_train=2000, n_pool=300, n_val=100, n_test=100)
QUICK_EMBEDDER = BuiltinEmbedderConfig(steps=60, batch_size=64)
QUICK_LVLM = BuiltinLVLMConfig(
    max_steps=30, min_steps=0, eval_every=15, probe_episodes=20, demo_ramp_steps=10
)
# Without a shipped LVLM for this world the demo trains one under a time cap; the shipped one
# was trained longer (`drum lvlm train-builtin`).
DEMO_LVLM = BuiltinLVLMConfig(max_seconds=150.0)
# One round: in `drum experiments` (three rounds, ablations) round 1 did as well as round 3.
DEMO_MINING = MiningConfig(rounds=1)
QUICK_MINING = MiningConfig(
    rounds=1,
    queries_per_task=40,
    val_queries=20,
    feedback=FeedbackConfig(candidates=10),
    train=RetrieverTrainConfig(epochs=1),
)


def timings_table(timings: dict[str, float]) -> Table:
    """The stage times of ``demo_timings.json`` (``<stage>_seconds``) as a rich table: stage,
    seconds, share of the total, and the total."""
    total = sum(timings.values())
    table = Table(title="demo stage times", box=box.SIMPLE_HEAD, show_footer=True)
    table.add_column("stage", footer="total")
    table.add_column("seconds", justify="right", footer=f"{total:.1f}")
    table.add_column("share", justify="right", footer="100%" if total > 0 else "")
    for key, seconds in timings.items():
        share = f"{100 * seconds / total:.0f}%" if total > 0 else ""
        table.add_row(STAGE_NAMES.get(key, key), f"{seconds:.1f}", share)
    return table


def run_demo(
    out: Path, quick: bool = False, use_assets: bool = True, console: Console | None = None
) -> dict[str, Any]:
    """Run the demo into ``out``; returns the ICL results it saved."""
    console = console or Console()
    world_config = QUICK_WORLD if quick else WorldConfig()
    timings: dict[str, float] = {}
    results_dir = out / "results"

    started = time.perf_counter()
    console.rule("1/6 built-in world")
    world_dir = make_world(out / "world", world_config)
    timings["world_seconds"] = time.perf_counter() - started

    started = time.perf_counter()
    console.rule("2/6 built-in embedder (tiny CLIP) and LVLM (tiny LLaVA)")
    models = ensure_builtin_models(
        world_dir,
        out / "models",
        world_config,
        QUICK_EMBEDDER if quick else None,
        QUICK_LVLM if quick else DEMO_LVLM,
        use_assets=use_assets,
    )
    console.print(f"models: {models['source']}")
    timings["models_seconds"] = time.perf_counter() - started

    started = time.perf_counter()
    console.rule("3/6 retrieval quality per strategy")
    embedder = HFDualEncoder(models["embedder"])
    cache = EmbeddingCache(out / "cache")
    quality_config = RetrievalQualityConfig(bootstrap_resamples=200 if quick else 1000)
    rows = measure_retrieval_quality(world_dir, embedder, quality_config, cache=cache)
    atomic_write_json(
        results_dir / "retrieval_quality.json",
        {
            "config": {"world": asdict(world_config), "retrieval_quality": asdict(quality_config)},
            "models": {k: str(v) for k, v in models.items()},
            "rows": rows,
            "provenance": provenance(),
        },
    )
    quality_md = quality_table_markdown(rows)
    atomic_write_text(results_dir / "retrieval_quality.md", quality_md + "\n")
    console.print(Markdown("**hit@4: the 4 demonstrations include the query's answer (val)**"))
    console.print(quality_tables(rows))
    timings["retrieval_seconds"] = time.perf_counter() - started

    started = time.perf_counter()
    console.rule("4/6 DRUM: fine-tune the embedder on the LVLM's feedback (mining rounds)")
    lvlm = HFLVLM(models["lvlm"])
    mining_config = QUICK_MINING if quick else DEMO_MINING
    # One mining directory per (LVLM, embedder, recipe): a rerun with other models starts a
    # new run instead of refusing the old one's directory.
    run_key = hashlib.sha256(
        json.dumps(
            [lvlm.fingerprint, embedder.fingerprint, mining_config.to_dict()], sort_keys=True
        ).encode()
    ).hexdigest()[:12]
    mining = mine(
        list(world_tasks(world_dir, "val").values()),
        lvlm,
        models["embedder"],
        out / "drum" / run_key,
        mining_config,
    )
    console.print(rounds_tables({"drum": mining}))
    timings["drum_seconds"] = time.perf_counter() - started

    started = time.perf_counter()
    console.rule("5/6 few-shot ICL evaluation of the built-in LVLM (test split)")
    icl_config = ICLEvalConfig(
        strategies=STRATEGIES,
        shots=(0, 1, 2, 4, 8),
        seeds=(0, 1),
        batch_size=64,
        # 300 test queries per task keep the whole demo within ~3 minutes on 2 cores;
        # `drum eval` runs the full split.
        max_queries=40 if quick else 300,
        bootstrap_resamples=200 if quick else 1000,
        corpus_ci="fixed_statistics",
    )
    tasks = list(world_tasks(world_dir, "test").values())
    icl = run_icl_eval(
        tasks,
        lvlm,
        icl_config,
        # "drum" is the embedder the built-in ``drum`` strategy compares with.
        {"default": embedder, "drum": HFDualEncoder(mining["final_embedder"])},
        results_dir,
        cache=cache,
        # The mining's feedback cache: the records show a demonstration's feedback where the
        # mining scored that (query, candidate) pair (its queries are val, so rarely on test).
        feedback=FeedbackLookup(FeedbackCache(out / "drum" / run_key / "feedback.jsonl")),
    )
    timings["icl_seconds"] = time.perf_counter() - started
    console.print(icl_tables(icl, header=True))

    started = time.perf_counter()
    console.rule("6/6 the per-query report")
    report = build_report(results_dir, out / "report.html")
    timings["report_seconds"] = time.perf_counter() - started
    rounded = {k: round(v, 1) for k, v in timings.items()}
    atomic_write_json(results_dir / "demo_timings.json", rounded)
    console.print(timings_table(rounded))
    console.print(f"timings (s): {rounded}")
    console.print(f"results, table and plot: {results_dir}")
    console.print(f"per-query report: {report.path} ({report.cards} query cards)")
    return icl


__all__ = ["run_demo", "timings_table"]

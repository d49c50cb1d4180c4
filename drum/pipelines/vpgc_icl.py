"""Does VPG-C change few-shot in-context learning? (issue "VPG-C", beyond the paper)

On the built-in world LVLM (the demo's ICL model):

1. a VPG-C adapter is trained on synthetic discriminative in-context episodes
   (``drum.builtin.vpgc.episodes``: one demonstration is the query's image edited so that the
   asked attribute changes, one reveals the answer), never on a world task's data
   (``train_vpgc(..., source="episodes")``) into ``<out>/adapter``;
2. base and base + adapter answer the world's test queries with the demonstrations that
   ``random``, ``concat`` and ``drum`` retrieve (``run_icl_eval``, the demo's settings,
   the DRUM embedder the demo mined): ``<out>/eval/{base,adapter}/icl_results.json``;
3. both answer the LVLM's matching probes (``probe_samples``: "oracle1" = one revealing
   demonstration among three with the same question and another answer) and held-out twin
   episodes (another seed), greedy, exact match;
4. ``<out>/vpgc_icl.json`` and ``.md``: every number side by side, base and adapter.

Every step resumes: the trained adapter and finished evaluations are reused.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from drum.results import Estimate, markdown_table_lines
from drum.utils.io import atomic_write_json, atomic_write_text

RESULTS = "vpgc_icl.json"
PROBE_KINDS = {"oracle1": ("match", "miss", "miss", "miss")}
ARMS = ("base", "adapter")


def _default_train() -> Any:
    from drum.adapters.vpgc.train import VPGCTrainConfig

    return VPGCTrainConfig()


def _default_data() -> Any:
    from drum.builtin.vpgc.sources import VPGCDataConfig

    return VPGCDataConfig(source="episodes", n_train=2000)


@dataclass(frozen=True)
class VPGCICLConfig:
    """The ICL question's settings (the ICL ones are the demo's): the adapter's training
    recipe, its twin episodes, the ICL grid and the probes."""

    train: Any = field(default_factory=_default_train)
    data: Any = field(default_factory=_default_data)
    strategies: tuple[str, ...] = ("random", "concat", "drum")
    shots: tuple[int, ...] = (1, 2, 4, 8)
    seeds: tuple[int, ...] = (0, 1)
    max_queries: int = 300
    probe_episodes: int = 300
    heldout_episodes: int = 300
    bootstrap_resamples: int = 1000


def _exact(predictions: list[str], answers: list[str]) -> list[float]:
    return [float(p.strip() == a.strip()) for p, a in zip(predictions, answers, strict=True)]


def _interval(scores: list[float], resamples: int, seed: int = 0) -> dict[str, Any]:
    from drum.metrics.stats import bootstrap_ci_of_means

    _, low, high = bootstrap_ci_of_means([scores], resamples, seed=seed)
    estimate = Estimate(float(np.mean(scores)), float(low), float(high))
    return {**estimate.to_json(), "n": len(scores)}


def _probe_rows(
    lvlms: dict[str, Any], world_dir: Path, heldout_dir: Path, config: VPGCICLConfig
) -> dict[str, Any]:
    from drum.builtin.lvlm.episodes import probe_samples
    from drum.builtin.vpgc.episodes import load_twin_samples

    suites: dict[str, list[tuple[Any, str]]] = {}
    for task in ("vqa", "caption", "classification"):
        for name, kinds in PROBE_KINDS.items():
            suites[f"{task}_{name}"] = probe_samples(
                world_dir, task, kinds, config.probe_episodes, seed=0
            )
    suites["twin_episodes_heldout"] = load_twin_samples(heldout_dir)
    rows: dict[str, Any] = {}
    for suite, samples in suites.items():
        prompts, answers = [p for p, _ in samples], [a for _, a in samples]
        rows[suite] = {}
        for arm, lvlm in lvlms.items():
            predictions = lvlm.generate(prompts, max_new_tokens=12, batch_size=64)
            scores = _exact(predictions, answers)
            rows[suite][arm] = _interval(scores, config.bootstrap_resamples)
    return rows


def _icl(
    arm: str,
    lvlm: Any,
    world_dir: Path,
    embedders: dict[str, Any],
    out: Path,
    config: VPGCICLConfig,
) -> dict[str, Any]:
    from drum.builtin.world.tasks import world_tasks
    from drum.eval.icl import RESULTS_FILE, ICLEvalConfig, run_icl_eval

    path = out / "eval" / arm / RESULTS_FILE
    icl_config = ICLEvalConfig(
        strategies=config.strategies,
        shots=(0, *config.shots),
        seeds=config.seeds,
        batch_size=64,
        max_queries=config.max_queries,
        bootstrap_resamples=config.bootstrap_resamples,
        corpus_ci="fixed_statistics",
    )
    if path.is_file():
        done = json.loads(path.read_text(encoding="utf-8"))
        if done["config"]["lvlm"].get("fingerprint") == lvlm.fingerprint:
            return done
    tasks = list(world_tasks(world_dir, "test").values())
    return run_icl_eval(tasks, lvlm, icl_config, embedders, path.parent)


def _icl_rows(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (task, strategy, shots): the primary metric of base and adapter (random:
    the seeds' mean)."""
    table: dict[tuple[str, str, int], dict[str, list[float]]] = {}
    metric_of: dict[str, str] = {}
    for arm, result in results.items():
        for row in result["rows"]:
            key = (row["task"], row["strategy"], int(row["shots"]))
            metric = row.get("primary_metric") or next(iter(row["metric"]))
            metric_of[row["task"]] = metric
            value = Estimate.from_json(row["metric"][metric]).value
            table.setdefault(key, {}).setdefault(arm, []).append(value)
    return [
        {
            "task": task,
            "strategy": strategy,
            "shots": shots,
            "metric": metric_of[task],
            **{arm: float(np.mean(values)) for arm, values in arms.items()},
        }
        for (task, strategy, shots), arms in sorted(table.items())
    ]


def run_vpgc_icl(
    out: str | Path, demo_dir: str | Path, config: VPGCICLConfig | None = None
) -> dict[str, Any]:
    """Train (or reuse) the adapter, evaluate both arms, write ``vpgc_icl.json`` / ``.md``."""
    from drum.adapters import load_adapter
    from drum.builtin.assets import ensure_builtin_models
    from drum.builtin.vpgc.episodes import CARD_NAME as EPISODES_CARD
    from drum.builtin.vpgc.episodes import TwinEpisodeConfig, make_twin_episodes
    from drum.builtin.vpgc.sources import train_on_synthetic
    from drum.builtin.world.generate import WorldConfig
    from drum.embed.hf import HFDualEncoder
    from drum.lvlm.hf import HFLVLM
    from drum.utils.checkpoint import card_matches

    config = config or VPGCICLConfig()
    out, demo_dir = Path(out), Path(demo_dir)
    world_dir = demo_dir / "world"
    drum_embedder = final_drum_embedder(demo_dir)
    # The demo's models: the shipped ones when they match its world, else those it trained.
    models = ensure_builtin_models(world_dir, demo_dir / "models", WorldConfig())
    base_dir = Path(models["lvlm"])
    started = time.perf_counter()
    adapter_dir = train_on_synthetic(
        base_dir, out / "adapter", config.train, config.data, data_dir=out / "adapter.data"
    )
    train_seconds = time.perf_counter() - started
    train_card = json.loads((adapter_dir / "vpgc_train.json").read_text(encoding="utf-8"))

    base = HFLVLM(base_dir)
    lvlms = {"base": base, "adapter": load_adapter(HFLVLM(base_dir), adapter_dir)}
    heldout = out / "heldout_episodes"
    heldout_config = TwinEpisodeConfig(
        n_train=config.heldout_episodes, seed=config.train.seed + 1000, region=config.data.region
    )
    expected = {"config": asdict(heldout_config), "base": base.fingerprint}
    if not card_matches(heldout / EPISODES_CARD, expected):
        make_twin_episodes(heldout, heldout_config, base)

    embedders = {
        "default": HFDualEncoder(models["embedder"]),
        "drum": HFDualEncoder(drum_embedder),
    }
    timings = {"train_seconds": round(train_seconds, 1)}
    icl = {}
    for arm, lvlm in lvlms.items():
        started = time.perf_counter()
        icl[arm] = _icl(arm, lvlm, world_dir, embedders, out, config)
        timings[f"icl_{arm}_seconds"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    probes = _probe_rows(lvlms, world_dir, heldout, config)
    timings["probe_seconds"] = round(time.perf_counter() - started, 1)
    results = {
        "config": {
            "train": asdict(config.train),
            "data": asdict(config.data),
            **{k: v for k, v in asdict(config).items() if k not in ("train", "data")},
            "world": str(world_dir),
            "drum_embedder": str(drum_embedder),
        },
        "adapter": {
            k: train_card.get(k)
            for k in ("steps", "train_seconds", "trainable_parameters", "share_of_base")
        },
        "icl": _icl_rows(icl),
        "probes": probes,
        "timings": timings,
    }
    atomic_write_json(out / RESULTS, results)
    atomic_write_text(out / "vpgc_icl.md", markdown_table(results) + "\n")
    render_plot(results, out / "vpgc_icl.png")
    return results


def final_drum_embedder(demo_dir: Path) -> Path:
    """The DRUM-trained embedder of the demo's mining run in ``demo_dir`` (``drum demo``)."""
    candidates = sorted((demo_dir / "drum").glob("*/mining.json"))
    if not candidates:
        raise FileNotFoundError(
            f"{demo_dir}: no DRUM mining run (drum/<run>/mining.json); run `make demo` first"
        )
    record = json.loads(candidates[-1].read_text(encoding="utf-8"))
    return Path(record["final_embedder"])


def render_plot(results: dict[str, Any], path: Path) -> Path:
    """Left: the probes, base and adapter with 95% intervals; right: each world task's primary
    metric at the largest shot count per strategy, base and adapter."""
    from drum.utils.plotting import new_figure, percent_error_bars, save_png

    figure = new_figure((12, 4))
    left, right = figure.subplots(1, 2, width_ratios=[1, 1.6])
    suites = list(results["probes"])
    width = 0.38
    for offset, arm in zip((-width / 2, width / 2), ARMS, strict=True):
        values, errors = percent_error_bars(
            [Estimate.from_json(results["probes"][s][arm]) for s in suites]
        )
        positions = [i + offset for i in range(len(suites))]
        left.bar(positions, values, width, yerr=errors, capsize=3, label=arm)
    left.set_xticks(range(len(suites)), [s.replace("_", "\n") for s in suites], fontsize=8)
    left.set_ylabel("exact match (%)")
    left.set_title("matching probes")
    left.legend()
    top = max(row["shots"] for row in results["icl"])
    rows = [row for row in results["icl"] if row["shots"] == top]
    labels = [f"{row['task']}\n{row['strategy']}" for row in rows]
    for offset, arm in zip((-width / 2, width / 2), ARMS, strict=True):
        positions = [i + offset for i in range(len(rows))]
        right.bar(positions, [100 * row[arm] for row in rows], width, label=arm)
    right.set_xticks(range(len(rows)), labels, fontsize=7)
    right.set_ylabel("primary metric (x100)")
    right.set_title(f"world tasks, {top} shots")
    right.legend()
    return save_png(figure, path)


def _percent(value: float) -> str:
    return f"{100 * value:.1f}"


def markdown_table(results: dict[str, Any]) -> str:
    """The probes (with 95% intervals) and the ICL rows, base beside adapter."""
    probes = [
        [suite, *(Estimate.from_json(arms[a]).format(decimals=1, scale=100) for a in ARMS)]
        for suite, arms in results["probes"].items()
    ]
    icl = [
        [
            row["task"],
            row["strategy"],
            str(row["shots"]),
            row["metric"],
            _percent(row["base"]),
            _percent(row["adapter"]),
            f"{100 * (row['adapter'] - row['base']):+.1f}",
        ]
        for row in results["icl"]
    ]
    return "\n".join(
        [
            *markdown_table_lines(
                ["probe (exact match, %)", "base [95% CI]", "+ VPG-C [95% CI]"], probes
            ),
            "",
            *markdown_table_lines(
                ["task", "strategy", "shots", "metric", "base", "+ VPG-C", "change"], icl
            ),
        ]
    )


__all__ = ["VPGCICLConfig", "final_drum_embedder", "markdown_table", "render_plot", "run_vpgc_icl"]

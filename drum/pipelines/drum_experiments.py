"""DRUM's claims, measured: the trained retriever vs the similarity strategies, and ablations.

1. Mining (``drum.finetune.mining``) on each task's pool with validation on ``val``: ``R`` rounds
   per training seed. Round 1 of the same run is the "without mining (R = 1)" ablation.
2. Ablations, each mined for ``ablation_rounds`` rounds with training seed 0:
   ``no_concat`` (image embeddings only, trained and retrieved with ``image_weight = 1``) and
   ``no_rerank`` (trained on the embedder's own similarity order, not the LVLM's feedback).
3. ICL evaluation on ``test``: the baselines and every DRUM variant, one results JSON with a
   markdown table and a plot rendered from it (``drum.eval.report``). Each variant is a
   ``StrategySpec`` (``concat`` over its mining run's embedder, named ``<run>/round<r>``) whose
   name is its row label; ``drum`` rows carry their training seed (``train_seed``), so the
   report averages them over training seeds.

Everything resumes: mining rounds are skipped when done, feedback is cached, and the
evaluation is skipped when ``drum_results.json`` holds one with the same config (experiment,
tasks, and the fingerprints of the LVLM and of every embedder).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from drum.builtin.world.tasks import world_tasks
from drum.embed.cache import EmbeddingCache
from drum.embed.hf import HFDualEncoder
from drum.eval.icl import ICLEvalConfig, evaluate_icl
from drum.eval.report import render_report
from drum.finetune.config import MiningConfig
from drum.finetune.mining import mine
from drum.lvlm.hf import HFLVLM
from drum.retrieve.strategies import DEFAULT_EMBEDDER, StrategySpec
from drum.utils.checkpoint import card_matches
from drum.utils.io import atomic_write_json
from drum.utils.provenance import provenance

RESULTS_NAME = "drum_results.json"
ABLATIONS = ("no_concat", "no_rerank")
ABLATION_LABELS = {
    "no_concat": "drum (image only)",
    "no_rerank": "drum (no LVLM re-rank)",
}
R1_LABEL = "drum (R=1)"


@dataclass(frozen=True)
class DrumExperimentConfig:
    """What ``run_drum_experiments`` trains and evaluates.

    Attributes:
        mining: the DRUM recipe (rounds ``R``, queries, candidates, training).
        train_seeds: DRUM is mined once per seed; its rows are averaged over seeds.
        ablations: a subset of ``ABLATIONS``.
        ablation_rounds: rounds of each ablation's mining (compare with ``drum (R=1)``
            when 1).
        baselines: similarity / random strategies evaluated beside DRUM.
        shots: demonstration counts (0 adds the zero-shot row).
        seeds: seeds of the random baseline.
        max_queries: test queries per task (``None``: the whole split).
    """

    mining: MiningConfig = field(default_factory=MiningConfig)
    train_seeds: tuple[int, ...] = (0, 1, 2)
    ablations: tuple[str, ...] = ABLATIONS
    ablation_rounds: int = 1
    baselines: tuple[str, ...] = ("random", "image", "text", "concat")
    shots: tuple[int, ...] = (0, 1, 2, 4, 8)
    seeds: tuple[int, ...] = (0, 1, 2)
    max_queries: int | None = None
    batch_size: int = 64

    def __post_init__(self) -> None:
        unknown = set(self.ablations) - set(ABLATIONS)
        if unknown:
            raise ValueError(f"unknown ablations {sorted(unknown)}; choose from {ABLATIONS}")
        if not self.train_seeds:
            raise ValueError("train_seeds must not be empty")
        if self.ablation_rounds < 1:
            raise ValueError("ablation_rounds must be >= 1")


def _variants(config: DrumExperimentConfig) -> dict[str, MiningConfig]:
    """Mining runs by directory name."""
    runs = {
        f"drum-seed{seed}": replace(config.mining, train=replace(config.mining.train, seed=seed))
        for seed in config.train_seeds
    }
    if "no_concat" in config.ablations:
        runs["no_concat"] = replace(
            config.mining,
            rounds=config.ablation_rounds,
            train=replace(config.mining.train, image_weight=1.0),
        )
    if "no_rerank" in config.ablations:
        runs["no_rerank"] = replace(
            config.mining, rounds=config.ablation_rounds, relevance="similarity"
        )
    return runs


def run_drum_experiments(
    world_dir: str | Path,
    embedder_dir: str | Path,
    lvlm_dir: str | Path,
    out: str | Path,
    config: DrumExperimentConfig | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Mine every variant, evaluate them with the baselines, write ``drum_results.json``
    (+ ``.md`` / ``.png``) under ``out`` and return the results."""
    config = config or DrumExperimentConfig()
    world_dir, out = Path(world_dir), Path(out)
    lvlm = HFLVLM(lvlm_dir)
    val_tasks = list(world_tasks(world_dir, "val").values())
    test_tasks = list(world_tasks(world_dir, "test").values())
    timings: dict[str, float] = {}
    summaries: dict[str, Any] = {}
    for name, mining_config in _variants(config).items():
        started = time.perf_counter()
        summaries[name] = mine(
            val_tasks, lvlm, embedder_dir, out / "mining" / name, mining_config, progress
        )
        timings[f"mining_{name}"] = round(time.perf_counter() - started, 1)

    # Every DRUM row set is a strategy over its own embedder, named after its mining round.
    embedder_dirs: dict[str, str | Path] = {DEFAULT_EMBEDDER: embedder_dir}
    variants: list[StrategySpec] = []

    def variant(label: str, run: str, round_index: int, **spec: Any) -> None:
        record = summaries[run]["rounds"][round_index]
        name = f"{run}/round{record['round']}"
        embedder_dirs[name] = Path(record["embedder"])
        variants.append(StrategySpec(label, "concat", embedder=name, **spec))

    for seed in config.train_seeds:
        variant("drum", f"drum-seed{seed}", -1, train_seed=seed)
        if config.mining.rounds > 1:
            variant(R1_LABEL, f"drum-seed{seed}", 1, train_seed=seed)
    for name in config.ablations:
        weight = {"image_weight": 1.0} if name == "no_concat" else {}
        variant(ABLATION_LABELS[name], name, -1, train_seed=0, **weight)

    # Each embedder is loaded once and serves every task.
    embedders = {name: HFDualEncoder(directory) for name, directory in embedder_dirs.items()}
    eval_config = ICLEvalConfig(
        strategies=(*config.baselines, *variants),
        shots=config.shots,
        seeds=config.seeds,
        image_weight=config.mining.train.image_weight,
        batch_size=config.batch_size,
        max_queries=config.max_queries,
        corpus_ci="fixed_statistics",
    )
    resolved = {
        "experiment": {**asdict(config), "mining": config.mining.to_dict()},
        "tasks": [task.to_dict() for task in test_tasks],
        "lvlm": {"name": str(lvlm_dir), "fingerprint": lvlm.fingerprint},
        "embedders": {
            name: {"name": str(embedder_dirs[name]), "fingerprint": model.fingerprint}
            for name, model in embedders.items()
        },
        "strategies": eval_config.to_dict()["strategies"],
        "seeds": list(config.seeds),
        "order": eval_config.order,
    }
    path = out / RESULTS_NAME
    # Paths and other non-JSON values are recorded as their strings (``default=str``).
    if card_matches(path, {"config": json.loads(json.dumps(resolved, default=str))}):
        render_report(path)
        return json.loads(path.read_text(encoding="utf-8"))

    started = time.perf_counter()
    cache = EmbeddingCache(out / "cache")
    rows: list[dict[str, Any]] = []
    for task in test_tasks:
        rows += evaluate_icl(task, lvlm, eval_config, embedders, cache, progress)
    timings["evaluation"] = round(time.perf_counter() - started, 1)

    results = {
        "config": resolved,
        "rows": rows,
        "mining": {name: {"rounds": summary["rounds"]} for name, summary in summaries.items()},
        "seconds": timings,
        "provenance": provenance(),
    }
    atomic_write_json(path, results)
    render_report(path)
    return json.loads(path.read_text(encoding="utf-8"))

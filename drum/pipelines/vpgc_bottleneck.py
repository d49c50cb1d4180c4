"""VPG-C where it has something to complete: the built-in BLIP-2 (``make vpgc-blip2``).

1. The base: the shipped built-in BLIP-2 (``drum.builtin.blip2``; stage B, whose Q-Former
   drops the small object) and its stage A (the ceiling), or both trained when the recipe
   differs.
2. The held-out tasks (``make_heldout_tasks``): primary, near and far forms, none of them in
   any arm's synthetic data.
3. Each arm (``BottleneckArm``) trains on VPG-C's synthetic edited pairs
   (``make_edited_pairs``: the edit where the Q-Former attends least, or at random) with
   ``train_vpgc``: VPG-C (query copies at L/2), a same-size LoRA on the LM, the query tokens
   alone; or VPG-C on the held-out tasks' own train split (``data="heldout"``: what the
   module can carry, not a zero-shot number).
4. Every column answers every held-out test task greedily (``evaluate_demon``, DEMON's
   open-ended scorer: ROUGE-L, which for these one- or two-word answers is exact match or
   half credit); the synthetic arms and the base also answer the synthetic test split
   (in-domain accuracy).
5. ``vpgc_bottleneck.json`` / ``.md`` / ``.png``: per column and task the score with a 95%
   bootstrap interval (seed-averaged per sample for several seeds, each seed's own score
   beside it), per group (primary / near / far) the mean of its tasks, chance; plus the
   diagnostics (``drum.builtin.blip2.vpgc_probe``) of VPG-C's first seed.

Every step resumes: finished models, data and predictions are reused.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from drum.pipelines.vpgc_experiments import (
    _sample_scores,
    arm_record,
    markdown_table,
    plot_vpgc_experiments,
    summarise_groups,
)
from drum.results import markdown_table_lines
from drum.utils.io import atomic_write_json, atomic_write_text

RESULTS = "vpgc_bottleneck.json"
ARM_METHODS = ("vpgc", "lora", "queries")
ARM_DATA = ("synthetic", "heldout")


@dataclass(frozen=True)
class BottleneckArm:
    """One trained column: ``method`` (``ARM_METHODS``), where the synthetic edits go
    (``region``), what it trains on (``data``), its seed."""

    method: str = "vpgc"
    region: str = "attention"
    data: str = "synthetic"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in ARM_METHODS or self.data not in ARM_DATA:
            raise ValueError(f"method in {ARM_METHODS}, data in {ARM_DATA}: got {self}")

    @property
    def group(self) -> str:
        name = {"vpgc": "VPG-C", "lora": "LoRA", "queries": "queries only"}[self.method]
        if self.region != "attention":
            name += f" ({self.region} regions)"
        if self.data == "heldout":
            name += " on held-out tasks"
        return name

    @property
    def name(self) -> str:
        return f"{self.method}-{self.region}-{self.data}-s{self.seed}"


ARMS = (
    *(BottleneckArm("vpgc", seed=s) for s in (0, 1, 2)),
    BottleneckArm("vpgc", region="random"),
    BottleneckArm("lora"),
    BottleneckArm("queries"),
    BottleneckArm("vpgc", data="heldout"),
)


def _default_train() -> Any:
    from drum.adapters.vpgc.config import VPGCConfig
    from drum.adapters.vpgc.train import VPGCTrainConfig

    return VPGCTrainConfig(
        adapter=VPGCConfig(query_copies=4),
        batch_size=32,
        max_steps=6000,
        lr=1e-3,
        max_seconds=4 * 3600.0,
        checkpoint_every=500,
        log_every=250,
    )


def _default_pairs() -> Any:
    from drum.builtin.blip2.data import EditedPairsConfig

    return EditedPairsConfig()


def _default_heldout() -> Any:
    from drum.builtin.blip2.data import HeldoutConfig

    return HeldoutConfig()


def _default_base() -> Any:
    from drum.builtin.blip2.train import BuiltinBlip2Config

    return BuiltinBlip2Config()


@dataclass(frozen=True)
class BottleneckConfig:
    """The arms, their training recipe and data, the held-out tasks, the base's recipe."""

    arms: tuple[BottleneckArm, ...] = ARMS
    train: Any = field(default_factory=_default_train)
    pairs: Any = field(default_factory=_default_pairs)
    heldout: Any = field(default_factory=_default_heldout)
    base: Any = field(default_factory=_default_base)
    batch_size: int = 64
    max_new_tokens: int = 4
    bootstrap_resamples: int = 1000
    diagnostics: bool = True
    require_gates: bool = True

    def __post_init__(self) -> None:
        names = [arm.name for arm in self.arms]
        if len(set(names)) != len(names):
            raise ValueError(f"arms must differ, got {names}")


def _tasks(root: Path, split: str) -> list[Any]:
    from drum.demon.format import read_demon_task

    return [read_demon_task(p) for p in sorted((root / split).iterdir()) if p.is_dir()]


def _samples(tasks: list[Any], digest_source: str, data_dir: Path) -> Any:
    from drum.adapters.vpgc.train import TrainingSamples
    from drum.builtin.demon.lvlm import tasks_digest
    from drum.demon.prompt import demon_prompt

    pairs = [(demon_prompt(t, s), str(s.response)) for t in tasks for s in t.samples]
    return TrainingSamples(pairs, tasks_digest(tasks), digest_source, data_dir)


def _evaluate(lvlm: Any, tasks: list[Any], out_dir: Path, config: BottleneckConfig) -> None:
    from drum.demon.run import evaluate_demon

    evaluate_demon(
        lvlm,
        tasks,
        out_dir,
        batch_size=config.batch_size,
        max_new_tokens=config.max_new_tokens,
        progress=False,
        categories={},
    )


def _arm_lvlm(arm: BottleneckArm, base_dir: Path, arm_dir: Path) -> Any:
    from drum.lvlm.hf import HFLVLM

    if arm.method == "vpgc":
        from drum.adapters import load_adapter

        return load_adapter(HFLVLM(base_dir), arm_dir)
    return HFLVLM(arm_dir)


def run_vpgc_bottleneck(
    out: str | Path, config: BottleneckConfig | None = None, progress: bool = True
) -> dict[str, Any]:
    """Everything of the module docstring into ``out``; returns the results."""
    from drum.adapters.vpgc.train import TRAIN_CARD, train_vpgc
    from drum.builtin.blip2.assets import ensure_builtin_blip2
    from drum.builtin.blip2.data import make_edited_pairs, make_heldout_tasks
    from drum.builtin.blip2.questions import FORMS
    from drum.lvlm.hf import HFLVLM
    from drum.utils.provenance import provenance

    config = config or BottleneckConfig()
    out = Path(out)
    models = ensure_builtin_blip2(
        out / "base_training", config.base, progress, config.require_gates
    )
    base_dir = models["stage_b"]
    heldout_dir = make_heldout_tasks(out / "heldout", config.heldout)
    test, heldout_train = _tasks(heldout_dir, "test"), _tasks(heldout_dir, "train")
    names = tuple(task.name for task in test)
    reference = {}
    for column, directory in (("base", base_dir), ("stage A (ceiling)", models["stage_a"])):
        eval_dir = out / "eval" / column.split()[0]
        _evaluate(HFLVLM(directory), test, eval_dir, config)
        reference[column] = {t: _sample_scores(eval_dir, t) for t in names}

    per_arm: dict[str, dict[str, list[float]]] = {}
    in_domain: dict[str, dict[str, float]] = {}
    arms_info: dict[str, Any] = {}
    for arm in config.arms:
        arm_dir = out / "arms" / arm.name
        base = HFLVLM(base_dir)
        if arm.data == "synthetic":
            pairs_config = replace(config.pairs, region=arm.region, seed=arm.seed)
            pairs_dir = make_edited_pairs(
                out / "pairs" / f"{arm.region}-s{arm.seed}", pairs_config, base
            )
            samples = _samples(_tasks(pairs_dir, "train"), "edited-pairs", pairs_dir)
        else:
            samples = _samples(heldout_train, "heldout-train", heldout_dir)
        train = replace(config.train, method=arm.method, seed=arm.seed)
        train_vpgc(base, arm_dir, samples, train, progress=progress)
        started = time.perf_counter()
        lvlm = _arm_lvlm(arm, base_dir, arm_dir)
        _evaluate(lvlm, test, out / "eval" / arm.name, config)
        per_arm[arm.name] = {t: _sample_scores(out / "eval" / arm.name, t) for t in names}
        if arm.data == "synthetic":
            synthetic_test = _tasks(pairs_dir, "test")
            for who, model in (("base", HFLVLM(base_dir)), (arm.name, lvlm)):
                eval_dir = out / "eval_synthetic" / f"{arm.region}-s{arm.seed}" / who
                _evaluate(model, synthetic_test, eval_dir, config)
                scores = json.loads((eval_dir / "demon_scores.json").read_text(encoding="utf-8"))
                in_domain.setdefault(f"{arm.region}-s{arm.seed}", {})[who] = {
                    t.name: scores["tasks"][t.name]["score"] for t in synthetic_test
                }
        card = json.loads((arm_dir / TRAIN_CARD).read_text(encoding="utf-8"))
        arms_info[arm.name] = {
            **arm_record(arm, arm_dir, started),
            "final_loss": (card.get("history") or [{}])[-1].get("loss"),
        }
    task_card = {"tasks": {t: {"category": FORMS[t].group} for t in names}}
    columns = summarise_groups(
        task_card, names, per_arm, config.arms, reference, config.bootstrap_resamples
    )
    results: dict[str, Any] = {
        "config": json.loads(json.dumps(asdict(config), default=str)),
        "chance": {t: FORMS[t].chance for t in names},
        "categories": {t: FORMS[t].group for t in names},
        "columns": columns,
        "in_domain": in_domain,
        "arms": arms_info,
        "provenance": provenance(),
    }
    if config.diagnostics:
        from drum.builtin.blip2.vpgc_probe import bottleneck_diagnostics

        first = next((a for a in config.arms if a.method == "vpgc" and a.data == "synthetic"), None)
        if first is not None:
            results["diagnostics"] = bottleneck_diagnostics(
                base_dir, out / "arms" / first.name, test
            )
    atomic_write_json(out / RESULTS, results)
    render_vpgc_bottleneck(out / RESULTS)
    return results


def render_vpgc_bottleneck(results_path: str | Path) -> tuple[Path, Path]:
    """``vpgc_bottleneck.md`` and ``.png`` beside the JSON (re-render any time from it)."""
    results_path = Path(results_path)
    results = json.loads(results_path.read_text(encoding="utf-8"))
    png = plot_vpgc_experiments(results, results_path.with_suffix(".png"))
    lines = [
        "# VPG-C on the built-in BLIP-2 (held-out tasks, zero-shot)",
        "",
        markdown_table(results),
    ]
    if results.get("in_domain"):
        lines += ["## In-domain: the synthetic test split", ""]
        for data, by_model in results["in_domain"].items():
            tasks = list(next(iter(by_model.values())))
            rows = [[who, *(f"{100 * v[t]:.1f}" for t in tasks)] for who, v in by_model.items()]
            lines += [f"Pairs `{data}`:", "", *markdown_table_lines(["model", *tasks], rows), ""]
    arms = [
        [name, str(a.get("steps")), str(a.get("train_seconds")),
         f"{a.get('trainable_parameters'):,}",
         "-" if a.get("share_of_base") is None else f"{100 * a['share_of_base']:.2f}%",
         "-" if a.get("final_loss") is None else f"{a['final_loss']:.3f}"]
        for name, a in results["arms"].items()
    ]  # fmt: skip
    header = ["arm", "steps", "train s", "trained parameters", "share of base", "final loss"]
    lines += ["## Arms", "", *markdown_table_lines(header, arms), ""]
    if results.get("diagnostics"):
        lines += ["## Diagnostics (VPG-C, first seed)", "", "```json",
                  json.dumps(results["diagnostics"], indent=1), "```", ""]  # fmt: skip
    lines += [
        "Scores: DEMON's open-ended scorer (ROUGE-L F), in %, with 95% bootstrap intervals over "
        "the test samples (seed-averaged for groups of several seeds). No synthetic arm saw a "
        "held-out task; base = stage B, ceiling = stage A.",
        "",
        f"![VPG-C on the built-in BLIP-2]({png.name})",
    ]
    markdown = results_path.with_suffix(".md")
    atomic_write_text(markdown, "\n".join(lines) + "\n")
    return markdown, png

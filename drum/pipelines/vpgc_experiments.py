"""VPG-C measured zero-shot on the built-in DEMON-style tasks, beside the base, its ablations
and the supervised ceiling (issue "VPG-C", ``make vpgc``).

1. The benchmark (``run_demon_benchmark`` into ``demon_dir``, reused when done) gives the
   tasks, the base, its zero-shot scores, chance and the per-task ceilings.
2. Each *arm* (``VPGCArm``: method, region choice, layer, seed) is trained on the synthetic
   discriminative data (``train_vpgc``; never on a benchmark task) into
   ``<out>/arms/<arm>``, its data in ``<out>/synthetic/<region>-s<seed>``.
3. Each arm answers every benchmark test split zero-shot (``evaluate_demon``, greedy, the
   reference's scorers): ``<out>/eval/<arm>``.
4. ``<out>/vpgc_experiments.json``: per *group* (the arms that differ only by seed) and task,
   the seed-mean score with a 95% interval from resampling the test samples of the
   seed-averaged per-sample scores (the seeds' spread is listed beside it), and per category
   the unweighted mean of its tasks; rendered to ``.md`` and ``.png``.

Every step resumes: finished models and predictions are reused.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from drum.demon.categories import category_score
from drum.metrics.stats import bootstrap_ci_of_means
from drum.pipelines.demon_benchmark import DemonBenchmarkConfig
from drum.results import Estimate, markdown_table_lines
from drum.utils.io import atomic_write_json, atomic_write_text
from drum.utils.plotting import new_figure, percent_error_bars, save_png

RESULTS = "vpgc_experiments.json"
METHOD_LABELS = {"vpgc": "VPG-C", "projector": "projector tuning", "lora": "LoRA"}


@dataclass(frozen=True)
class VPGCArm:
    """One trained model: ``method`` (``vpgc``, ``projector`` or ``lora``), where the synthetic
    edits go (``attention``: least attended; ``random``), VPG-C's ``layer`` (None: L/2)."""

    method: str = "vpgc"
    region: str = "attention"
    layer: int | None = None
    seed: int = 0

    @property
    def group(self) -> str:
        name = self.method if self.method != "vpgc" else f"vpgc-{self.region}"
        if self.method != "vpgc" and self.region != "attention":
            name += f"-{self.region}"
        return name + ("" if self.layer is None else f"-L{self.layer}")

    @property
    def name(self) -> str:
        return f"{self.group}-s{self.seed}"


def _arms(seeds: tuple[int, ...], layers: tuple[int, ...]) -> tuple[VPGCArm, ...]:
    return (
        *(VPGCArm("vpgc", "attention", None, s) for s in seeds),
        *(VPGCArm("vpgc", "random", None, s) for s in seeds),
        VPGCArm("projector", "attention", None, 0),
        VPGCArm("lora", "attention", None, 0),
        *(VPGCArm("vpgc", "attention", layer, 0) for layer in layers),
    )


REDUCED_ARMS = _arms((0,), (1, 3))
"""``make vpgc``: one seed each (VPG-C at L/2 with attention or random regions, the two
same-data baselines, VPG-C at L/4 and 3L/4 of the built-in base's 4 layers)."""
FULL_ARMS = _arms((0, 1, 2), (1, 3))
"""``make vpgc-full``: three seeds for VPG-C with attention and with random regions."""


# Every arm trains its full max_steps: the trainer's default 300 s budget made the measured
# numbers depend on the machine's load (the slowest arm took 299 s alone on 2 cores).
TRAIN_SECONDS = 3600.0


def _default_train() -> Any:
    from drum.adapters.vpgc.train import VPGCTrainConfig

    return VPGCTrainConfig(max_seconds=TRAIN_SECONDS)


def _default_data() -> Any:
    from drum.builtin.vpgc.sources import VPGCDataConfig

    return VPGCDataConfig()


@dataclass(frozen=True)
class VPGCExperimentConfig:
    """The arms, the training recipe and synthetic data they share (each arm sets its method,
    layer, seed and region), and the benchmark they are measured on."""

    arms: tuple[VPGCArm, ...] = REDUCED_ARMS
    train: Any = field(default_factory=_default_train)
    data: Any = field(default_factory=_default_data)
    benchmark: DemonBenchmarkConfig = field(default_factory=DemonBenchmarkConfig)
    bootstrap_resamples: int = 1000

    def __post_init__(self) -> None:
        if not self.arms:
            raise ValueError("no arm to run")
        names = [arm.name for arm in self.arms]
        if len(set(names)) != len(names):
            raise ValueError(f"arms must differ, got {names}")


def _sample_scores(eval_dir: Path, task: str) -> list[float]:
    from drum.demon.evaluate import SAMPLE_SCORES_FILE

    lines = (eval_dir / task / SAMPLE_SCORES_FILE).read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["score"] for line in lines]


def _arm_lvlm(arm: VPGCArm, base_dir: Path, arm_dir: Path) -> Any:
    from drum.lvlm.hf import HFLVLM

    if arm.method == "vpgc":
        from drum.adapters import load_adapter

        return load_adapter(HFLVLM(base_dir), arm_dir)
    return HFLVLM(arm_dir)  # the baselines write whole models


def arm_record(arm: Any, arm_dir: Path, eval_started: float) -> dict[str, Any]:
    """What the results say of one trained arm: its fields and group, its training card's
    steps, seconds, speed and parameters, and the seconds since ``eval_started``."""
    from drum.adapters.vpgc.train import TRAIN_CARD

    card = json.loads((arm_dir / TRAIN_CARD).read_text(encoding="utf-8"))
    return {
        **asdict(arm),
        "group": arm.group,
        "train_seconds": card.get("train_seconds"),
        "steps": card.get("steps"),
        "steps_per_second": card.get("steps_per_second"),
        "trainable_parameters": card.get("trainable_parameters"),
        "share_of_base": card.get("share_of_base"),
        "eval_seconds": round(time.perf_counter() - eval_started, 1),
    }


def _interval(scores: list[list[float]], resamples: int) -> Estimate:
    return Estimate(*bootstrap_ci_of_means(scores, n_resamples=resamples))


def summarise_groups(
    card: dict[str, Any],
    tasks: tuple[str, ...],
    per_arm: dict[str, dict[str, list[float]]],
    arms: tuple[VPGCArm, ...],
    reference: dict[str, dict[str, list[float]]],
    resamples: int,
) -> dict[str, Any]:
    """Per column (``reference``'s, e.g. base and ceiling, then each group of arms) and task:
    score and 95% interval of the seed-averaged per-sample scores, the seeds' own scores; per
    category the unweighted mean of its tasks (``category_score``'s rounding)."""
    columns: dict[str, dict[str, list[list[float]]]] = {
        name: {task: [scores[task]] for task in tasks} for name, scores in reference.items()
    }
    for arm in arms:
        group = columns.setdefault(arm.group, {task: [] for task in tasks})
        for task in tasks:
            group[task].append(per_arm[arm.name][task])
    results: dict[str, Any] = {}
    categories = dict.fromkeys(card["tasks"][task]["category"] for task in tasks)
    for name, by_task in columns.items():
        averaged = {task: list(np.mean(by_task[task], axis=0)) for task in tasks}
        entry: dict[str, Any] = {"tasks": {}, "categories": {}}
        for task in tasks:
            entry["tasks"][task] = {
                **_interval([averaged[task]], resamples).to_json(),
                "seeds": [float(np.mean(s)) for s in by_task[task]],
            }
        for category in categories:
            members = [t for t in tasks if card["tasks"][t]["category"] == category]
            interval = _interval([averaged[t] for t in members], resamples)
            value = category_score([entry["tasks"][t]["value"] for t in members]) / 100
            entry["categories"][category] = Estimate(value, interval.low, interval.high).to_json()
        results[name] = entry
    return results


def run_vpgc_experiments(
    out: str | Path,
    config: VPGCExperimentConfig | None = None,
    demon_dir: str | Path = "runs/demon",
    progress: bool = True,
) -> dict[str, Any]:
    """Run every arm into ``out`` (module docstring) and return the results."""
    from drum.builtin.vpgc.sources import train_on_synthetic
    from drum.demon.format import read_demon_task
    from drum.demon.run import evaluate_demon
    from drum.pipelines.demon_benchmark import DEFAULT_EMBEDDER, ensure_base, run_demon_benchmark
    from drum.utils.provenance import provenance

    config = config or VPGCExperimentConfig()
    out, demon_dir = Path(out), Path(demon_dir)
    benchmark = run_demon_benchmark(demon_dir, config.benchmark, progress=progress)
    base_dir, _ = ensure_base(demon_dir, config.benchmark, DEFAULT_EMBEDDER, progress)
    tasks = config.benchmark.tasks
    test = [read_demon_task(demon_dir / "data" / "test" / name) for name in tasks]
    reference = {"base": {t: _sample_scores(demon_dir / "eval" / "base", t) for t in tasks}}
    if config.benchmark.with_ceiling:
        reference["ceiling"] = {
            t: _sample_scores(demon_dir / "eval" / "ceiling" / t, t) for t in tasks
        }
    per_arm: dict[str, dict[str, list[float]]] = {}
    arms_info: dict[str, Any] = {}
    for arm in config.arms:
        arm_dir = out / "arms" / arm.name
        train = replace(
            config.train,
            method=arm.method,
            adapter=replace(config.train.adapter, layer=arm.layer),
            seed=arm.seed,
        )
        train_on_synthetic(
            base_dir,
            arm_dir,
            train,
            replace(config.data, region=arm.region),
            data_dir=out / "synthetic" / f"{arm.region}-s{arm.seed}",
            progress=progress,
        )
        started = time.perf_counter()
        eval_dir = out / "eval" / arm.name
        evaluate_demon(
            _arm_lvlm(arm, base_dir, arm_dir),
            test,
            eval_dir,
            batch_size=config.benchmark.batch_size,
            max_new_tokens=config.benchmark.max_new_tokens,
            progress=progress,
        )
        per_arm[arm.name] = {t: _sample_scores(eval_dir, t) for t in tasks}
        arms_info[arm.name] = arm_record(arm, arm_dir, started)
    data_card = json.loads((demon_dir / "data" / "builtin_demon.json").read_text(encoding="utf-8"))
    columns = summarise_groups(
        data_card, tasks, per_arm, config.arms, reference, config.bootstrap_resamples
    )
    results = {
        "config": json.loads(json.dumps(asdict(config), default=str)),
        "chance": {t: benchmark["tasks"][t]["chance"] for t in tasks},
        "categories": {t: benchmark["tasks"][t]["category"] for t in tasks},
        "columns": columns,
        "arms": arms_info,
        "provenance": provenance(),
    }
    atomic_write_json(out / RESULTS, results)
    render_vpgc_experiments(out / RESULTS)
    return results


def _cell(entry: dict[str, Any]) -> str:
    return Estimate.from_json(entry).format(decimals=1, scale=100)


def markdown_table(results: dict[str, Any]) -> str:
    """Rows: tasks, then categories; columns: chance, then every column of the results."""
    names = list(results["columns"])
    rows = []
    for task, chance in results["chance"].items():
        cells = [_cell(results["columns"][n]["tasks"][task]) for n in names]
        rows.append([task, f"{100 * chance:.1f}", *cells])
    categories = dict.fromkeys(results["categories"].values())
    for category in categories:
        members = [t for t, c in results["categories"].items() if c == category]
        chance = category_score([results["chance"][t] for t in members])
        cells = [_cell(results["columns"][n]["categories"][category]) for n in names]
        rows.append([f"**{category}**", f"{chance:.1f}", *cells])
    return "\n".join(markdown_table_lines(["task", "chance", *names], rows)) + "\n"


def plot_vpgc_experiments(results: dict[str, Any], path: Path) -> Path:
    """Per category, one bar per column (%) with its 95% interval, as PNG."""
    names = list(results["columns"])
    categories = list(dict.fromkeys(results["categories"].values()))
    figure = new_figure((max(7.0, 1.3 * len(categories)), 4.2))
    ax = figure.subplots()
    width = 0.8 / len(names)
    x = np.arange(len(categories))
    for i, name in enumerate(names):
        values, errors = percent_error_bars(
            [Estimate.from_json(results["columns"][name]["categories"][c]) for c in categories]
        )
        ax.bar(x + (i - len(names) / 2 + 0.5) * width, values, width, yerr=errors, label=name)
    ax.set_xticks(x, categories, rotation=30, ha="right", fontsize="small")
    ax.set_ylim(0, 100)
    ax.set_ylabel("score (%)")
    ax.legend(fontsize="x-small", ncol=2)
    ax.grid(axis="y", alpha=0.3)
    return save_png(figure, path)


def render_vpgc_experiments(results_path: str | Path) -> tuple[Path, Path]:
    """``vpgc_experiments.md`` and ``.png`` beside the JSON (re-render any time from it)."""
    results_path = Path(results_path)
    results = json.loads(results_path.read_text(encoding="utf-8"))
    png = plot_vpgc_experiments(results, results_path.with_suffix(".png"))
    lines = ["# VPG-C on the built-in DEMON-style tasks (zero-shot)", "", markdown_table(results)]
    arms = [
        [
            name,
            str(arm.get("train_seconds")),
            str(arm.get("steps_per_second")),
            f"{arm.get('trainable_parameters'):,}",
            "-" if arm.get("share_of_base") is None else f"{100 * arm['share_of_base']:.2f}%",
        ]
        for name, arm in results["arms"].items()
    ]
    header = ["arm", "train s", "steps/s", "trained parameters", "share of base"]
    lines += markdown_table_lines(header, arms)
    lines += [
        "",
        "Scores in % with 95% bootstrap intervals over the test samples (seed-averaged for "
        "groups of several seeds; their own scores are in the JSON). No arm saw a benchmark "
        "task: base = the shipped base zero-shot, ceiling = the base fine-tuned on each task.",
        "",
        f"![VPG-C]({png.name})",
    ]
    markdown = results_path.with_suffix(".md")
    atomic_write_text(markdown, "\n".join(lines) + "\n")
    return markdown, png

"""The built-in DEMON-style benchmark, end to end: chance, the base zero-shot, the ceiling.

1. ``make_builtin_demon`` writes the tasks (train and test splits) under ``<out>/data``.
2. The base LVLM: the shipped one when it was made exactly as this run would make it
   (``drum.builtin.demon.assets``), else trained here on the generic formats
   (``<out>/generic``, ``<out>/base``).
3. The base answers every test split zero-shot (``evaluate_demon``, greedy): ``<out>/eval/base``.
4. A supervised ceiling per task: the base fine-tuned on that task's own train split
   (``<out>/ceiling/<Task>``), then scored on its test split (``<out>/eval/ceiling/<Task>``).
5. ``<out>/demon_benchmark.json``: per task and category, chance, base and ceiling with 95%
   bootstrap intervals; rendered to ``demon_benchmark.md`` and ``demon_benchmark.png``.

Every step resumes: data and models already made are reused, and ``evaluate_demon`` keeps the
predictions it has.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from drum.builtin.demon.assets import (
    base_identity,
    reproduce_lines,
    shipped_demon_base,
)
from drum.builtin.demon.card import CARD, builtin_categories, register_card_scoring
from drum.builtin.demon.config import BuiltinDemonConfig
from drum.builtin.demon.lvlm import BASE_CONFIG, CEILING_CONFIG, DemonLVLMConfig, train_demon_lvlm
from drum.builtin.demon.tasks import DEMON_TASKS
from drum.demon.categories import category_score
from drum.demon.format import DemonTask, read_demon_task
from drum.metrics.stats import bootstrap_ci_of_means
from drum.results import Estimate, markdown_table_lines
from drum.utils.checkpoint import card_matches
from drum.utils.io import atomic_write_json, atomic_write_text
from drum.utils.plotting import new_figure, percent_error_bars, save_png

RESULTS = "demon_benchmark.json"
DEFAULT_EMBEDDER = Path(__file__).resolve().parent.parent / "assets" / "builtin" / "embedder"


@dataclass(frozen=True)
class DemonBenchmarkConfig:
    """What ``run_demon_benchmark`` measures and how.

    ``max_new_tokens`` bounds greedy replies (the longest built-in answer is 5 words and the
    model stops at ``[EOS]``; the reference's 300 would only slow a run that never stops).
    """

    data: BuiltinDemonConfig = field(
        default_factory=lambda: BuiltinDemonConfig(n_train=1000, n_test=300)
    )
    generic: BuiltinDemonConfig = field(
        default_factory=lambda: BuiltinDemonConfig(n_train=3000, n_test=200)
    )
    base: DemonLVLMConfig = BASE_CONFIG
    ceiling: DemonLVLMConfig = CEILING_CONFIG
    tasks: tuple[str, ...] = tuple(DEMON_TASKS)
    with_ceiling: bool = True
    batch_size: int = 32
    max_new_tokens: int = 24
    bootstrap_resamples: int = 1000

    def __post_init__(self) -> None:
        unknown = [name for name in self.tasks if name not in DEMON_TASKS]
        if unknown or not self.tasks:
            raise ValueError(
                f"unknown built-in DEMON task(s) {unknown}; known: {list(DEMON_TASKS)}"
            )
        if self.batch_size < 1 or self.max_new_tokens < 1:
            raise ValueError("batch_size and max_new_tokens must be >= 1")


def _resolved(config: BuiltinDemonConfig) -> BuiltinDemonConfig:
    from drum.builtin.demon.make import resolve_config

    return resolve_config(None, config)[0]


def ensure_data(out: Path, config: BuiltinDemonConfig) -> Path:
    """``<out>/data``: the built-in tasks, made unless a root of this very config is there."""
    from drum.builtin.demon.make import make_builtin_demon

    root = out / "data"
    if card_matches(root / CARD, {"config": asdict(_resolved(config))}):
        return root
    make_builtin_demon(None, root, config)
    return root


def _read(root: Path, names: list[str] | tuple[str, ...]) -> list[DemonTask]:
    return [read_demon_task(root / name) for name in names]


def ensure_base(
    out: Path,
    config: DemonBenchmarkConfig,
    embedder_dir: Path,
    progress: bool = True,
    base_dir: Path | None = None,
    use_shipped: bool = True,
) -> tuple[Path, bool]:
    """The base LVLM's directory, and whether it is the shipped copy: the shipped one if
    ``use_shipped`` and it was made as ``config`` says, else trained into ``base_dir``
    (default ``<out>/base``) on generic data written under ``<out>/generic``."""
    from drum.builtin.demon.generic import GENERIC_TASKS
    from drum.builtin.demon.make import make_generic_demon

    generic = _resolved(config.generic)
    if use_shipped:
        shipped = shipped_demon_base(base_identity(config.base, generic, embedder_dir))
        if shipped is not None:
            return shipped, True
    generic_root = out / "generic"
    if not card_matches(generic_root / "generic_demon.json", {"config": asdict(generic)}):
        make_generic_demon(generic_root, generic)
    base_dir = train_demon_lvlm(
        _read(generic_root / "train", list(GENERIC_TASKS)),
        base_dir or out / "base",
        config.base,
        embedder_dir=embedder_dir,
        probes=_read(generic_root / "test", list(GENERIC_TASKS)),
        about={"generic_data": asdict(generic)},
        progress=progress,
    )
    return base_dir, False


def _evaluate(
    model_dir: Path,
    tasks: list[DemonTask],
    out: Path,
    categories: dict[str, tuple[str, ...]] | None,
    config: DemonBenchmarkConfig,
    progress: bool,
) -> dict[str, list[float]]:
    """Per task, its per-sample scores of ``model_dir`` on ``tasks`` (written under ``out``)."""
    from drum.demon.evaluate import SAMPLE_SCORES_FILE
    from drum.demon.run import evaluate_demon
    from drum.lvlm.hf import HFLVLM

    lvlm = HFLVLM(model_dir)
    evaluate_demon(
        lvlm,
        tasks,
        out,
        batch_size=config.batch_size,
        max_new_tokens=config.max_new_tokens,
        progress=progress,
        categories=categories,
    )
    per_sample = {}
    for task in tasks:
        lines = (out / task.name / SAMPLE_SCORES_FILE).read_text(encoding="utf-8").splitlines()
        per_sample[task.name] = [json.loads(line)["score"] for line in lines]
    return per_sample


def _interval(scores: list[list[float]], resamples: int) -> Estimate:
    return Estimate(*bootstrap_ci_of_means(scores, n_resamples=resamples))


def _category(
    scores: list[list[float]], task_values: list[float], resamples: int
) -> dict[str, Any]:
    """A category's estimate as JSON: the interval of its tasks' samples around the unweighted
    mean of its tasks' values (``category_score``'s rounding)."""
    interval = _interval(scores, resamples)
    value = category_score(task_values) / 100
    return Estimate(value, interval.low, interval.high).to_json()


def summarise(
    card: dict[str, Any],
    names: tuple[str, ...],
    base: dict[str, list[float]],
    ceiling: dict[str, list[float]] | None,
    resamples: int,
) -> dict[str, Any]:
    """Per task and per category (the unweighted mean of its tasks, ``category_score``'s
    rounding), chance / base / ceiling as fractions with 95% bootstrap intervals."""
    tasks: dict[str, Any] = {}
    for name in names:
        entry = card["tasks"][name]
        tasks[name] = {
            "category": entry["category"],
            "metric": entry["metric"],
            "n": len(base[name]),
            "chance": entry["chance"]["test"],
            "base": _interval([base[name]], resamples).to_json(),
        }
        if ceiling is not None:
            tasks[name]["ceiling"] = _interval([ceiling[name]], resamples).to_json()
    categories: dict[str, Any] = {}
    for category in dict.fromkeys(tasks[name]["category"] for name in names):
        members = [name for name in names if tasks[name]["category"] == category]
        row: dict[str, Any] = {
            "tasks": members,
            "chance": category_score([tasks[m]["chance"] for m in members]) / 100,
        }
        for arm, per_sample in (("base", base), ("ceiling", ceiling)):
            if per_sample is not None:
                values = [tasks[m][arm]["value"] for m in members]
                row[arm] = _category([per_sample[m] for m in members], values, resamples)
        categories[category] = row
    return {"tasks": tasks, "categories": categories}


def run_demon_benchmark(
    out: str | Path,
    config: DemonBenchmarkConfig | None = None,
    embedder_dir: str | Path = DEFAULT_EMBEDDER,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the benchmark into ``out`` (see the module docstring) and return its results."""
    from drum.utils.provenance import provenance

    config = config or DemonBenchmarkConfig()
    out, embedder_dir = Path(out), Path(embedder_dir)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    data_root = ensure_data(out, config.data)
    card = json.loads((data_root / CARD).read_text(encoding="utf-8"))
    categories = builtin_categories(data_root)
    register_card_scoring(data_root)  # its image-choice tasks, as the root's card records them
    timings["data_seconds"] = time.perf_counter() - started

    started = time.perf_counter()
    base_dir, shipped = ensure_base(out, config, embedder_dir, progress)
    timings["base_seconds"] = time.perf_counter() - started

    started = time.perf_counter()
    test_tasks = _read(data_root / "test", config.tasks)
    base_eval = out / "eval" / "base"
    base_scores = _evaluate(base_dir, test_tasks, base_eval, categories, config, progress)
    timings["base_eval_seconds"] = time.perf_counter() - started

    ceiling_scores = None
    if config.with_ceiling:
        started = time.perf_counter()
        ceiling_scores = {}
        for name, test_task in zip(config.tasks, test_tasks, strict=True):
            model_dir = train_demon_lvlm(
                _read(data_root / "train", [name]),
                out / "ceiling" / name,
                config.ceiling,
                start=base_dir,
                progress=progress,
            )
            eval_dir = out / "eval" / "ceiling" / name
            ceiling_scores |= _evaluate(model_dir, [test_task], eval_dir, None, config, progress)
        timings["ceiling_seconds"] = time.perf_counter() - started

    base_card = json.loads((base_dir / "drum_demon_lvlm.json").read_text(encoding="utf-8"))
    results = {
        "config": json.loads(json.dumps(asdict(config))),
        "base": {
            "dir": str(base_dir),
            "shipped": shipped,
            "generic_probes": base_card.get("final_probes", {}),
            "parameters": base_card.get("parameters"),
            "reproduce": reproduce_lines(config.base, _resolved(config.generic)),
        },
        **summarise(card, config.tasks, base_scores, ceiling_scores, config.bootstrap_resamples),
        "timings": {key: round(value, 1) for key, value in timings.items()},
        "provenance": provenance(),
    }
    atomic_write_json(out / RESULTS, results)
    render_benchmark(out / RESULTS)
    return results


def _percent(entry: dict[str, Any] | float | None) -> str:
    if entry is None:
        return "-"
    if isinstance(entry, float):
        return f"{100 * entry:.1f}"
    return Estimate.from_json(entry).format(decimals=1, scale=100)


def table_rows(results: dict[str, Any]) -> list[list[str]]:
    """One row per task, then one per category: name, metric, chance, base, ceiling (in %)."""
    rows = []
    for name, entry in results["tasks"].items():
        rows.append(
            [
                name,
                entry["category"],
                entry["metric"],
                _percent(entry["chance"]),
                _percent(entry["base"]),
                _percent(entry.get("ceiling")),
            ]
        )
    for name, entry in results["categories"].items():
        rows.append(
            [
                f"**{name}**",
                f"{len(entry['tasks'])} task(s)",
                "mean",
                _percent(entry["chance"]),
                _percent(entry["base"]),
                _percent(entry.get("ceiling")),
            ]
        )
    return rows


HEADER = ["task", "category", "metric", "chance", "base zero-shot [95% CI]", "ceiling [95% CI]"]


def markdown_table(results: dict[str, Any]) -> str:
    return "\n".join(markdown_table_lines(HEADER, table_rows(results))) + "\n"


def plot_benchmark(results: dict[str, Any], path: Path) -> Path:
    """Per task, bars for chance, base and ceiling (%) with 95% CI bars, as PNG."""
    import numpy as np

    names = list(results["tasks"])
    figure = new_figure((max(6.0, 0.9 * len(names)), 4.0))
    ax = figure.subplots()
    x = np.arange(len(names))
    ax.bar(x - 0.27, [100 * results["tasks"][n]["chance"] for n in names], 0.27, label="chance")
    for offset, key in ((0.0, "base"), (0.27, "ceiling")):
        entries = [results["tasks"][n].get(key) for n in names]
        if any(e is None for e in entries):
            continue
        values, errors = percent_error_bars([Estimate.from_json(e) for e in entries])
        label = "base zero-shot" if key == "base" else "supervised ceiling"
        ax.bar(x + offset, values, 0.27, yerr=errors, capsize=2, label=label)
    ax.set_xticks(x, names, rotation=45, ha="right", fontsize="small")
    ax.set_ylim(0, 100)
    ax.set_ylabel("score (%)")
    ax.legend(fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    return save_png(figure, path)


def render_benchmark(results_path: str | Path) -> tuple[Path, Path]:
    """``demon_benchmark.md`` and ``.png`` beside the JSON (re-render any time from it)."""
    results_path = Path(results_path)
    results = json.loads(results_path.read_text(encoding="utf-8"))
    png = plot_benchmark(results, results_path.with_suffix(".png"))
    base = results["base"]
    lines = [
        "# Built-in DEMON-style benchmark",
        "",
        f"- base: `{base['dir']}` ({'shipped' if base['shipped'] else 'trained in this run'}; "
        f"{base['parameters']:,} parameters)",
        f"- reproduce the base: `{' && '.join(base['reproduce'])}`",
        f"- git: {results.get('provenance', {}).get('git_sha')}",
        "",
        markdown_table(results),
        "Scores in %: Rouge-L f (open-ended) or accuracy (multi-choice) with 95% bootstrap "
        "intervals; a category is the unweighted mean of its tasks. Chance: the expected score "
        "of a random guess (docs/demon.md). Ceiling: the base fine-tuned on the task's own train "
        "split.",
        "",
        f"![benchmark]({png.name})",
    ]
    markdown = results_path.with_suffix(".md")
    atomic_write_text(markdown, "\n".join(lines) + "\n")
    return markdown, png

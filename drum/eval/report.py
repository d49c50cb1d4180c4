"""Markdown tables and plots of ICL results, rendered from the results JSON alone.

Everything here reads the dict that ``drum.eval.icl.run_icl_eval`` writes to
``icl_results.json`` (``{"config", "rows", "provenance"}``), never in-memory evaluation state,
so a report can be re-rendered from any saved run. Each task is shown by its primary metric
(the first of its metrics). Seeded strategies with several seeds are summarised by the mean
over seeds, with an interval from the lowest to the highest per-seed 95% bound: a
conservative envelope covering both query sampling and seed-to-seed variation.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drum.eval.icl_config import ZERO_SHOT
from drum.results import MISSING, Estimate, markdown_table_lines
from drum.retrieve.strategies import DEFAULT_EMBEDDER
from drum.utils.io import atomic_write_text
from drum.utils.plotting import new_figure, save_png


@dataclass(frozen=True)
class Cell(Estimate):
    """One (task, strategy, shots) summary: mean over seeds and the 95% interval envelope."""

    n_seeds: int = 1


def load_results(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The results dict saved at ``path``."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def task_names(results: dict[str, Any]) -> list[str]:
    """Tasks in configuration order (then any others found in the rows)."""
    configured = [task["name"] for task in results.get("config", {}).get("tasks", [])]
    return list(dict.fromkeys([*configured, *(row["task"] for row in results["rows"])]))


def primary_metric(results: dict[str, Any], task: str) -> str:
    """The task's headline metric: the first of its configured metrics."""
    for spec in results.get("config", {}).get("tasks", []):
        if spec["name"] == task and spec.get("metrics"):
            return str(spec["metrics"][0])
    # Without a task record, rows list metrics in the task's order (JSON keeps key order).
    for row in results["rows"]:
        if row["task"] == task:
            return next(iter(row["metric"]))
    raise KeyError(f"no rows for task {task!r}")


def summarize(results: dict[str, Any], task: str) -> dict[str, dict[int, Cell]]:
    """``{strategy: {shots: Cell}}`` for ``task``, zero-shot first, then in row order."""
    metric = primary_metric(results, task)
    rows = [row for row in results["rows"] if row["task"] == task]
    rows.sort(key=lambda row: row["strategy"] != ZERO_SHOT)  # stable: keeps row order otherwise
    grouped: dict[str, dict[int, list[Estimate]]] = {}
    for row in rows:
        grouped.setdefault(row["strategy"], {}).setdefault(int(row["shots"]), []).append(
            Estimate.from_json(row["metric"][metric])
        )
    summary: dict[str, dict[int, Cell]] = {}
    for strategy, by_shots in grouped.items():
        summary[strategy] = {}
        for shots, values in sorted(by_shots.items()):
            summary[strategy][shots] = Cell(
                value=sum(v.value for v in values) / len(values),
                low=min(v.low for v in values),
                high=max(v.high for v in values),
                n_seeds=len(values),
            )
    return summary


def format_cell(cell: Cell | None) -> str:
    """``0.512 [0.47, 0.55]``, or a dash for a combination that was not run."""
    if cell is None:
        return MISSING
    return cell.format(decimals=3, bound_decimals=2)


def all_shots(results: dict[str, Any], task: str | None = None) -> list[int]:
    rows = [row for row in results["rows"] if task is None or row["task"] == task]
    return sorted({int(row["shots"]) for row in rows})


def markdown_table(results: dict[str, Any]) -> str:
    """Per task, a table: rows = strategies, columns = shots, cells = primary metric + CI."""
    sections = []
    for task in task_names(results):
        metric = primary_metric(results, task)
        summary = summarize(results, task)
        shots = all_shots(results, task)
        lines = [
            f"### {task} ({metric})",
            "",
            *markdown_table_lines(
                ["strategy", *(f"{k}-shot" for k in shots)],
                [
                    [strategy, *(format_cell(cells.get(k)) for k in shots)]
                    for strategy, cells in summary.items()
                ],
            ),
        ]
        seeded = {
            strategy: max(cell.n_seeds for cell in cells.values())
            for strategy, cells in summary.items()
            if max(cell.n_seeds for cell in cells.values()) > 1
        }
        if seeded:
            counts = ", ".join(f"{s} ({n} seeds)" for s, n in seeded.items())
            lines += [
                "",
                f"Mean over seeds for {counts}; the interval spans the lowest to the highest "
                "per-seed 95% bound.",
            ]
        sections.append("\n".join(lines))
    return "\n\n".join(sections) + "\n"


def plot(results: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """One subplot per task: primary metric vs shots, a line per strategy with 95% CI bars,
    zero-shot as a dashed horizontal line. Written as PNG atomically."""
    tasks = task_names(results)
    figure = new_figure((4.6 * max(1, len(tasks)), 3.8))
    axes = figure.subplots(1, max(1, len(tasks)), squeeze=False)[0]
    for ax, task in zip(axes, tasks, strict=False):
        summary = summarize(results, task)
        # Strategies are nudged apart along x so that their error bars do not hide each other.
        lines = [strategy for strategy in summary if strategy != ZERO_SHOT]
        span = max(all_shots(results, task)) or 1
        for strategy, cells in summary.items():
            shots = sorted(cells)
            if strategy == ZERO_SHOT:
                cell = cells[0]
                ax.axhline(cell.value, linestyle="--", color="0.4", label=ZERO_SHOT)
                ax.axhspan(cell.low, cell.high, color="0.4", alpha=0.1, linewidth=0)
                continue
            values = [cells[k].value for k in shots]
            # Clipped at 0: the mean of seeds can sit a rounding error outside its envelope.
            below = [max(0.0, cells[k].value - cells[k].low) for k in shots]
            above = [max(0.0, cells[k].high - cells[k].value) for k in shots]
            dodge = 0.012 * span * (lines.index(strategy) - (len(lines) - 1) / 2)
            ax.errorbar(
                [k + dodge for k in shots],
                values,
                yerr=[below, above],
                marker="o",
                capsize=3,
                label=strategy,
            )
        ax.set_xticks(all_shots(results, task))
        ax.set_xlabel("shots")
        ax.set_ylabel(primary_metric(results, task))
        ax.set_title(task)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return save_png(figure, path, dpi=110)


def _header(results: dict[str, Any]) -> list[str]:
    config = results.get("config", {})
    lines = ["# ICL evaluation", ""]
    # ``embedders`` maps names to records; results written before it held one ``embedder``.
    default_embedder = config.get("embedders", {}).get(DEFAULT_EMBEDDER, config.get("embedder"))
    for role, model in (("lvlm", config.get("lvlm")), ("embedder", default_embedder)):
        if model:
            lines.append(f"- {role}: `{model['name']}` ({model['fingerprint']})")
    queries = {row["task"]: row["n_queries"] for row in results["rows"]}
    if queries:
        lines.append("- queries: " + ", ".join(f"{t} {n}" for t, n in queries.items()))
    if "order" in config:
        lines.append(f"- order: {config['order']}; seeds: {config.get('seeds')}")
    sha = results.get("provenance", {}).get("git_sha")
    if sha:
        lines.append(f"- git: {sha}")
    return [*lines, ""]


def render_report(results_json_path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``icl_results.md`` and ``icl_results.png`` beside the results JSON."""
    results_json_path = Path(results_json_path)
    results = load_results(results_json_path)
    markdown_path = results_json_path.with_suffix(".md")
    png_path = results_json_path.with_suffix(".png")
    plot(results, png_path)
    text = "\n".join(_header(results)) + "\n" + markdown_table(results)
    text += f"\n![results]({png_path.name})\n"
    atomic_write_text(markdown_path, text)
    return markdown_path, png_path

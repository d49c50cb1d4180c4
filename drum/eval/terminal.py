"""Result tables for the terminal: the numbers of the markdown reports, in 80 columns.

The markdown files written beside each result JSON keep their form; in a terminal a markdown
table of ``0.571 [0.51, 0.63]`` cells wraps every cell over three lines. These render the
same numbers as rich tables that fit: bounds without their leading zero (``0.571 [.51,.63]``),
zero-shot beside the task's name instead of a column of its own, and, where one line per row
is still wider than the terminal, each interval under its value. Like ``drum.eval.report``
they read only the saved results (ICL results, retrieval-quality rows, mining summaries).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.markdown import Markdown
from rich.table import Table
from rich.text import Text

from drum.eval.report import (
    ZERO_SHOT,
    Cell,
    _header,
    primary_metric,
    summarize,
    task_names,
)
from drum.results import MISSING, Estimate


def _seeded(summary: dict[str, dict[int, Cell]]) -> dict[str, int]:
    """``{strategy: seeds}`` of the strategies averaged over seeds (as the markdown notes)."""
    seeds = {
        strategy: max(c.n_seeds for c in cells.values()) for strategy, cells in summary.items()
    }
    return {strategy: n for strategy, n in seeds.items() if n > 1}


def compact_cell(cell: Cell | None) -> tuple[str, str]:
    """A cell's value and interval (``report.format_cell``'s numbers), or a dash and nothing."""
    if cell is None:
        return MISSING, ""
    return cell.parts(decimals=3, bound_decimals=2, compact=True)


def _grid(first: list[str], columns: list[str]) -> Table:
    """A borderless table (a rule under the header), numbers right-aligned."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    for name in first:
        table.add_column(name, no_wrap=True)
    for name in columns:
        table.add_column(name, justify="right", no_wrap=True)
    return table


class _Fitted:
    """The one-line form of a table where it fits the console, else the stacked form (each
    interval on a line under its value)."""

    def __init__(self, build: Callable[[bool], Table]) -> None:
        self.build = build

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        table = self.build(False)
        # Measured unconstrained: a measurement is clamped to the width it is given.
        natural = console.measure(table, options=options.update_width(10_000)).maximum
        if natural > options.max_width:
            table = self.build(True)
        yield table


def _cells(pairs: list[tuple[str, str]], stacked: bool) -> list[str]:
    if stacked:
        return [f"{value}\n{ci}" if ci else value for value, ci in pairs]
    return [f"{value} {ci}" if ci else value for value, ci in pairs]


def _icl_task_table(results: dict[str, Any], task: str, stacked: bool) -> Table:
    summary = {k: v for k, v in summarize(results, task).items() if k != ZERO_SHOT}
    shots = sorted({k for cells in summary.values() for k in cells})
    table = _grid(["strategy"], [f"{k}-shot" for k in shots])
    for strategy, cells in summary.items():
        table.add_row(strategy, *_cells([compact_cell(cells.get(k)) for k in shots], stacked))
    return table


def icl_tables(results: dict[str, Any], header: bool = False) -> RenderableType:
    """Per task, its primary metric with 95% CIs: a row per strategy, a column per shot count
    (``report.markdown_table``'s numbers); ``header`` adds the report's model / query lines."""
    parts: list[RenderableType] = []
    if header:
        parts.append(Markdown("\n".join(_header(results))))
    notes: dict[str, None] = {}
    for task in task_names(results):
        summary = summarize(results, task)
        title = Text(f"{task} ({primary_metric(results, task)})", style="bold")
        zero = summary.get(ZERO_SHOT, {}).get(0)
        if zero is not None:
            title.append(f"  zero-shot {' '.join(compact_cell(zero))}", style="default")
        parts += [Text(), title] if parts else [title]
        if set(summary) - {ZERO_SHOT}:
            parts.append(_Fitted(lambda stacked, t=task: _icl_task_table(results, t, stacked)))
        seeded = _seeded(summary)
        if seeded:
            counts = ", ".join(f"{s} ({n} seeds)" for s, n in seeded.items())
            notes[
                f"Mean over seeds for {counts}; the interval spans the lowest to the highest "
                "per-seed 95% bound."
            ] = None
    parts += [Text(note, style="dim") for note in notes]
    return Group(*parts)


def quality_tables(rows: list[dict[str, Any]]) -> RenderableType:
    """Retrieval quality (``answer_hit_rate`` with its 95% CI): a row per strategy, a column
    per task (``retrieval_quality.quality_table_markdown``'s numbers, transposed)."""
    strategies = list(dict.fromkeys(row["strategy"] for row in rows))
    tasks = list(dict.fromkeys(row["task"] for row in rows))
    cell = {(row["task"], row["strategy"]): row["answer_hit_rate"] for row in rows}

    def build(stacked: bool) -> Table:
        table = _grid(["strategy"], tasks)
        for strategy in strategies:
            pairs = []
            for task in tasks:
                estimate = Estimate.from_json(cell[(task, strategy)])
                pairs.append(estimate.parts(decimals=3, compact=True))
            table.add_row(strategy, *_cells(pairs, stacked))
        return table

    return _Fitted(build)


def rounds_tables(runs: Mapping[str, dict[str, Any]]) -> RenderableType:
    """Per mining run, the validation metrics of every task: a row per (task, metric), a column
    per round (``drum.finetune.mining.rounds_table``'s numbers, transposed)."""
    parts: list[RenderableType] = []
    for name, summary in runs.items():
        rounds = summary["rounds"]
        validation = rounds[0]["validation"]
        title = Text(f"mining run {name} (validation, {len(rounds) - 1} rounds)", style="bold")
        parts += [Text(), title] if parts else [title]
        table = _grid(["task", "metric"], [f"round {record['round']}" for record in rounds])
        for task in validation:
            for index, metric in enumerate(validation[task]):
                values = [f"{record['validation'][task][metric]:.3f}" for record in rounds]
                table.add_row(task if index == 0 else "", metric, *values)
        parts.append(table)
    return Group(*parts)

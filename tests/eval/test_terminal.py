"""Terminal tables: the report's numbers, each cell on its line(s), within 80 columns."""

from __future__ import annotations

import io
import random
from typing import Any

import pytest
from rich.console import Console

from drum.eval.report import format_cell, markdown_table, summarize
from drum.eval.terminal import compact_cell, icl_tables, quality_tables, rounds_tables

DEMO_STRATEGIES = ("random", "fixed", "image", "text", "concat", "drum")
EXPERIMENT_STRATEGIES = (
    "random",
    "concat",
    "drum",
    "drum (R=1)",
    "drum (image only)",
    "drum (no LVLM re-rank)",
)
TASKS = (
    ("vqa", "vqa_accuracy", 1.0),
    ("caption", "cider", 4.0),
    ("classification", "accuracy", 1.0),
)


def icl_results(strategies: tuple[str, ...], shots: tuple[int, ...] = (0, 1, 2, 4, 8)) -> dict:
    """As ``run_icl_eval`` saves them: zero-shot, then strategies x shots (two seeds for the
    seeded ones); CIDEr-D runs up to ~4, as the demo's does."""
    rng = random.Random(0)
    rows: list[dict[str, Any]] = []

    def row(task: str, metric: str, strategy: str, k: int, seed: int | None, value: float) -> None:
        ci = [max(0.0, value - 0.06), value + 0.05]
        metrics = {metric: {"value": value, "ci95": ci}}
        rows.append(
            {
                "task": task,
                "strategy": strategy,
                "shots": k,
                "seed": seed,
                "metric": metrics,
                "n_queries": 300,
            }
        )

    for task, metric, scale in TASKS:
        row(task, metric, "zero-shot", 0, None, 0.108 * scale)
        for strategy in strategies:
            for k in (k for k in shots if k):
                for seed in (0, 1) if strategy in ("random", "fixed") else (None,):
                    row(task, metric, strategy, k, seed, rng.uniform(0.0, 0.99) * scale)
    tasks = [{"name": task, "metrics": [metric]} for task, metric, _ in TASKS]
    return {"config": {"tasks": tasks}, "rows": rows}


def render(renderable: Any, width: int = 80) -> list[str]:
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text().splitlines()


def row_lines(lines: list[str], strategy: str) -> list[str]:
    """The line that starts ``strategy``'s row and, when cells are stacked, the next one."""
    (start,) = [i for i, line in enumerate(lines) if line.startswith(strategy + "  ")]
    following = lines[start + 1] if start + 1 < len(lines) else ""
    stacked = following.startswith(" ") and following.strip().startswith("[")
    return lines[start : start + 2] if stacked else lines[start : start + 1]


def test_compact_cells_carry_the_markdown_numbers() -> None:
    results = icl_results(DEMO_STRATEGIES)
    for task, _, _ in TASKS:
        for cells in summarize(results, task).values():
            for cell in cells.values():
                value, ci = compact_cell(cell)
                # "0.571 [0.51, 0.63]" and "0.571" + "[.51,.63]": the same digits.
                assert format_cell(cell).replace("0.", ".").replace(" ", "") == (
                    (value + ci).replace("0.", ".")
                )
    assert compact_cell(None) == ("–", "")


@pytest.mark.parametrize("strategies", [DEMO_STRATEGIES, EXPERIMENT_STRATEGIES])
def test_icl_tables_fit_80_columns_without_wrapping_a_cell(strategies: tuple[str, ...]) -> None:
    results = icl_results(strategies)
    lines = render(icl_tables(results, header=True))
    assert max(len(line) for line in lines) <= 80
    for task, metric, _ in TASKS:
        zero = summarize(results, task)["zero-shot"][0]
        assert f"{task} ({metric})  zero-shot {' '.join(compact_cell(zero))}" in lines
    # Each row's lines hold exactly its cells' values and intervals, none cut or wrapped.
    titles = [i for i, line in enumerate(lines) if line.startswith(tuple(t for t, _, _ in TASKS))]
    titles = [i for i in titles if "zero-shot" in lines[i]]
    for (task, _, _), start, end in zip(TASKS, titles, [*titles[1:], len(lines)], strict=True):
        body = lines[start:end]
        for strategy, cells in summarize(results, task).items():
            if strategy == "zero-shot":
                continue
            tokens = " ".join(row_lines(body, strategy)).split()
            expected = [part for k in (1, 2, 4, 8) for part in compact_cell(cells[k])]
            assert sorted(tokens) == sorted([*strategy.split(), *expected]), (task, strategy)
    assert any(line.startswith("Mean over seeds for random (2 seeds)") for line in lines)


def test_a_wide_terminal_gets_one_line_per_row() -> None:
    results = icl_results(EXPERIMENT_STRATEGIES)
    lines = render(icl_tables(results), width=160)
    cells = summarize(results, "caption")["drum (no LVLM re-rank)"]
    (line,) = [line for line in lines if line.startswith("drum (no LVLM re-rank)")][1:2]
    assert " ".join(compact_cell(cells[8])) in line


def test_icl_tables_leave_the_markdown_report_alone() -> None:
    results = icl_results(DEMO_STRATEGIES)
    assert "| zero-shot | 0.108 [0.05, 0.16] | – | – | – | – |" in markdown_table(results)


def test_quality_and_rounds_tables_fit_80_columns() -> None:
    strategies = ("random", "fixed", "image", "text", "cross", "concat")
    rows = [
        {"task": task, "strategy": s, "answer_hit_rate": {"mean": 0.258, "ci95": [0.218, 0.296]}}
        for task, _, _ in TASKS
        for s in strategies
    ]
    lines = render(quality_tables(rows))
    assert max(len(line) for line in lines) <= 80
    for strategy in strategies:
        assert row_lines(lines, strategy)[0].split() == [strategy, *["0.258", "[.218,.296]"] * 3]
    validation = {
        task: {"hit@4": 0.9, "precision@4": 0.7, metric: 0.812} for task, metric, _ in TASKS
    }
    summary = {"rounds": [{"round": r, "validation": validation} for r in range(4)]}
    lines = render(rounds_tables({"drum": summary}))
    assert max(len(line) for line in lines) <= 80
    assert "classification  hit@4" in "\n".join(lines)
    assert [line.split()[-4:] for line in lines if "vqa_accuracy" in line] == [["0.812"] * 4]

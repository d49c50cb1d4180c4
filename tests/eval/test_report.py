"""Markdown tables and plots rendered from a results dict (as saved in icl_results.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from drum.eval.report import (
    format_cell,
    markdown_table,
    plot,
    primary_metric,
    render_report,
    summarize,
)


def _row(task: str, strategy: str, shots: int, seed: int | None, values: dict) -> dict[str, Any]:
    return {
        "task": task,
        "strategy": strategy,
        "shots": shots,
        "seed": seed,
        "metric": {
            name: {"value": value, "ci95": [value - 0.04, value + 0.04]}
            for name, value in values.items()
        },
        "n_queries": 100,
        "seconds": 0.1,
    }


def _results() -> dict[str, Any]:
    rows = [
        _row("caption", "zero-shot", 0, None, {"cider": 0.2, "bleu4": 0.1}),
        _row("caption", "random", 1, 0, {"cider": 0.5, "bleu4": 0.2}),
        _row("caption", "random", 1, 1, {"cider": 0.7, "bleu4": 0.3}),
        _row("caption", "random", 4, 0, {"cider": 0.8, "bleu4": 0.3}),
        _row("caption", "random", 4, 1, {"cider": 1.0, "bleu4": 0.4}),
        _row("caption", "image", 1, None, {"cider": 0.9, "bleu4": 0.35}),
        _row("caption", "image", 4, None, {"cider": 1.2, "bleu4": 0.45}),
        _row("vqa", "image", 1, None, {"vqa_accuracy": 0.512}),
    ]
    return {
        "config": {
            "tasks": [
                {"name": "vqa", "metrics": ["vqa_accuracy"]},
                {"name": "caption", "metrics": ["cider", "bleu4"]},
            ],
            "lvlm": {"name": "tiny", "fingerprint": "llava-0123"},
            "embedder": None,
            "order": "similar_last",
            "seeds": [0, 1],
        },
        "rows": rows,
        "provenance": {"git_sha": "abc"},
    }


def test_summary_averages_seeds_and_spans_their_intervals() -> None:
    summary = summarize(_results(), "caption")
    assert list(summary) == ["zero-shot", "random", "image"]
    cell = summary["random"][1]
    assert cell.n_seeds == 2
    assert cell.value == 0.6
    assert (cell.low, cell.high) == (0.5 - 0.04, 0.7 + 0.04)
    assert summary["image"][4].n_seeds == 1


def test_markdown_table_uses_the_primary_metric_and_task_order() -> None:
    results = _results()
    assert primary_metric(results, "caption") == "cider"
    table = markdown_table(results)
    assert table.index("### vqa (vqa_accuracy)") < table.index("### caption (cider)")
    assert "| image | 0.512 [0.47, 0.55] |" in table
    assert "| zero-shot | 0.200 [0.16, 0.24] | – | – |" in table
    assert "| random | – | 0.600 [0.46, 0.74] | 0.900 [0.76, 1.04] |" in table
    assert "random (2 seeds)" in table
    assert format_cell(None) == "–"


def test_primary_metric_falls_back_to_the_rows_metric_order() -> None:
    results = _results()
    del results["config"]["tasks"]
    assert primary_metric(results, "caption") == "cider"
    assert markdown_table(results).startswith("### caption (cider)")


def test_plot_and_report_files(tmp_path: Path) -> None:
    png = plot(_results(), tmp_path / "plot.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    path = tmp_path / "icl_results.json"
    path.write_text(json.dumps(_results()))
    markdown_path, png_path = render_report(path)
    assert (markdown_path.name, png_path.name) == ("icl_results.md", "icl_results.png")
    text = markdown_path.read_text()
    assert "`tiny` (llava-0123)" in text and "![results](icl_results.png)" in text
    assert markdown_table(_results()) in text
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporaries


@pytest.mark.parametrize("side", [12000, 20000])
def test_a_thumbnail_over_the_pixel_limit_is_too_large_not_a_traceback(
    side: int, tmp_path: Path
) -> None:
    from drum.eval.report_html import ReportError, Thumbnails
    from tests.data.big_png import write_big_png

    path = write_big_png(tmp_path / "big.png", side, side)
    with pytest.raises(ReportError, match="too large"):
        Thumbnails(64).css_class(str(path))

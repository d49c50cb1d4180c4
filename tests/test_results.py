"""The results vocabulary: one estimate type that reads every shape result files were written
in, one formatter that reproduces each table's numbers, one markdown table helper."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from drum.results import Estimate, markdown_table_lines, short_number


def test_every_stored_shape_reads_as_the_same_estimate() -> None:
    expected = Estimate(0.5, 0.4, 0.7)
    for entry in (
        {"value": 0.5, "ci95": [0.4, 0.7]},  # ICL rows (and every result written now)
        {"metric": "accuracy", "score": 0.5, "n": 9, "ci95": [0.4, 0.7]},  # DEMON scores
        {"mean": 0.5, "ci95": [0.4, 0.7]},  # retrieval quality before the one shape
    ):
        assert Estimate.from_json(entry) == expected
    assert Estimate.from_json({"score": 0.25}) == Estimate(0.25, 0.25, 0.25)  # no interval
    with pytest.raises(KeyError, match="no estimate"):
        Estimate.from_json({"ci95": [0.1, 0.2]})


def test_the_one_json_shape_round_trips() -> None:
    estimate = Estimate(0.512, 0.47, 0.55)
    assert estimate.to_json() == {"value": 0.512, "ci95": [0.47, 0.55]}
    assert Estimate.from_json(estimate.to_json()) == estimate


def test_the_formatter_gives_each_tables_numbers() -> None:
    estimate = Estimate(0.51234, 0.4712, 0.5561)
    # ICL markdown: value to 3 decimals, bounds to 2.
    assert estimate.format(bound_decimals=2) == "0.512 [0.47, 0.56]"
    # Retrieval quality: 3 and 3.
    assert estimate.format() == "0.512 [0.471, 0.556]"
    # DEMON and VPG-C tables: percent to 1 decimal, as f"{100 * x:.1f}" writes it.
    assert estimate.format(1, scale=100) == (
        f"{100 * 0.51234:.1f} [{100 * 0.4712:.1f}, {100 * 0.5561:.1f}]"
    )
    # The terminal: the interval without spaces and leading zeros.
    assert estimate.parts(bound_decimals=2, compact=True) == ("0.512", "[.47,.56]")
    assert Estimate(0.2, 0.218, 0.2961).parts(compact=True)[1] == "[.218,.296]"


def test_short_numbers() -> None:
    assert short_number(0.51) == ".51" and short_number(-0.049) == "-.05"
    assert short_number(3.051) == "3.05" and short_number(0.9999) == "1.00"


def test_markdown_table_lines() -> None:
    assert markdown_table_lines(["task", "a", "b"], [["x", "1", "2"], ["y", "3", "4"]]) == [
        "| task | a | b |",
        "|---|---|---|",
        "| x | 1 | 2 |",
        "| y | 3 | 4 |",
    ]


# ------------------------------------------- result files written before still render the same
SAMPLES = Path(__file__).parent / "fixtures" / "results_v0"


def _terminal(renderable: Any, width: int) -> str:
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def _render_all(samples: dict[str, Any], tmp_path: Path) -> dict[str, str]:
    """Every table a result file renders into, by the name of its stored rendering."""
    from drum.demon.report import markdown_report
    from drum.eval.report import _header, markdown_table
    from drum.eval.terminal import icl_tables, quality_tables
    from drum.pipelines import demon_benchmark, vpgc_experiments, vpgc_icl
    from drum.pipelines.retrieval_quality import quality_table_markdown

    icl, quality = samples["icl_results.json"], samples["retrieval_quality.json"]["rows"]
    path = tmp_path / "vpgc_experiments.json"
    path.write_text(json.dumps(samples["vpgc_experiments.json"]))
    full, _ = vpgc_experiments.render_vpgc_experiments(path)
    return {
        "icl_results.md": "\n".join(_header(icl)) + "\n" + markdown_table(icl),
        "icl_results.term80.txt": _terminal(icl_tables(icl, header=True), 80),
        "icl_results.term200.txt": _terminal(icl_tables(icl, header=True), 200),
        "retrieval_quality.md": quality_table_markdown(quality) + "\n",
        "retrieval_quality.term80.txt": _terminal(quality_tables(quality), 80),
        "demon_scores.md": markdown_report(samples["demon_scores.json"]),
        "demon_benchmark.md": demon_benchmark.markdown_table(samples["demon_benchmark.json"]),
        "vpgc_experiments.md": vpgc_experiments.markdown_table(samples["vpgc_experiments.json"]),
        "vpgc_experiments.full.md": full.read_text(),
        "vpgc_icl.md": vpgc_icl.markdown_table(samples["vpgc_icl.json"]) + "\n",
    }


def _canonical(value: Any) -> Any:
    """``value`` with every estimate in the one shape ``Estimate.to_json`` writes."""
    if isinstance(value, list):
        return [_canonical(item) for item in value]
    if not isinstance(value, dict):
        return value
    entry = {key: _canonical(item) for key, item in value.items()}
    if "ci95" in entry and "value" not in entry:
        key = next(k for k in ("score", "mean") if k in entry)
        entry = {("value" if k == key else k): item for k, item in entry.items()}
    return entry


@pytest.mark.parametrize("shape", ["as stored before", "the one shape"])
def test_result_files_render_character_for_character_as_before(shape: str, tmp_path: Path) -> None:
    """The samples are result files in the shapes the code before ``drum.results`` wrote
    (``value`` / ``score`` / ``mean`` beside ``ci95``); ``rendered/`` holds what that code made
    of them. Today's code renders the same text from them, and from the same results written
    in the one shape."""
    samples = {
        path.name: json.loads(path.read_text(encoding="utf-8")) for path in SAMPLES.glob("*.json")
    }
    if shape == "the one shape":
        samples = {name: _canonical(sample) for name, sample in samples.items()}
        assert "score" not in json.dumps(samples["vpgc_icl.json"])
    rendered = _render_all(samples, tmp_path)
    for name, text in rendered.items():
        assert text == (SAMPLES / "rendered" / name).read_text(encoding="utf-8"), name

"""``drum demo --quick`` end to end: world, trained models, retrieval quality, ICL results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from drum.cli.main import app
from drum.pipelines.demo import timings_table


@pytest.mark.slow
def test_quick_demo_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--out", str(out), "--quick", "--no-assets"])
    assert result.exit_code == 0, result.output
    results = out / "results"
    quality = json.loads((results / "retrieval_quality.json").read_text())
    assert {row["strategy"] for row in quality["rows"]} >= {"random", "image", "text", "concat"}
    icl = json.loads((results / "icl_results.json").read_text())
    strategies = {row["strategy"] for row in icl["rows"]}
    assert strategies == {"zero-shot", "random", "fixed", "image", "text", "concat", "drum"}
    assert {row["task"] for row in icl["rows"]} == {"vqa", "caption", "classification"}
    assert (results / "icl_results.png").stat().st_size > 0
    assert "| " in (results / "icl_results.md").read_text()
    assert (out / "models" / "lvlm" / "drum_lvlm.json").is_file()
    (mining_json,) = (out / "drum").glob("*/mining.json")
    mining = json.loads(mining_json.read_text())
    assert [r["round"] for r in mining["rounds"]] == [0, 1]
    assert icl["config"]["embedders"]["drum"]["name"] == mining["final_embedder"]
    # The per-query records and their report, whose path the demo prints.
    records = (results / "icl_queries.jsonl").read_text().splitlines()
    assert len(records) == sum(row["n_queries"] for row in icl["rows"])
    page = (out / "report.html").read_text(encoding="utf-8")
    assert 'class="card right"' in page or 'class="card wrong"' in page
    assert "Comparison: drum vs concat" in page
    assert "per-query report:" in result.output and "report.html" in result.output
    timings = json.loads((results / "demo_timings.json").read_text())
    assert timings["report_seconds"] > 0
    assert "demo stage times" in result.output


def test_timings_table_lists_every_stage_with_its_share() -> None:
    timings = {"world_seconds": 1.0, "drum_seconds": 6.0, "icl_seconds": 3.0}
    console = Console(width=80, record=True)
    console.print(timings_table(timings))
    text = console.export_text()
    for line in ("1 world", "4 DRUM training (mining)", "5 ICL evaluation"):
        assert line in text
    assert "60%" in text and "30%" in text and "10%" in text
    assert "10.0" in text  # the total

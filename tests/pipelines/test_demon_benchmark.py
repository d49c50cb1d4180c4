"""The built-in DEMON benchmark pipeline end to end on tiny models: results JSON, category
aggregation with intervals, the rendered table, and a rerun that reuses everything."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from drum.builtin.demon import BuiltinDemonConfig
from drum.builtin.demon.lvlm import DemonLVLMConfig
from drum.builtin.lvlm.model import BuiltinLVLMArchitecture
from drum.demon.categories import category_score
from drum.pipelines.demon_benchmark import (
    RESULTS,
    DemonBenchmarkConfig,
    markdown_table,
    run_demon_benchmark,
    summarise,
)

TINY = DemonLVLMConfig(
    architecture=BuiltinLVLMArchitecture(hidden=32, layers=2, heads=2, intermediate=64),
    batch_size=8, warmup_steps=2, max_steps=12, eval_every=6, checkpoint_every=100,
)  # fmt: skip
CONFIG = DemonBenchmarkConfig(
    data=BuiltinDemonConfig(n_train=8, n_test=6),
    generic=BuiltinDemonConfig(n_train=8, n_test=4),
    base=TINY,
    ceiling=replace(TINY, max_steps=4),
    tasks=("SameCount", "SamePlaces", "SpotTheEdit"),
    batch_size=4,
    max_new_tokens=6,
    bootstrap_resamples=50,
)


@pytest.mark.slow
def test_the_benchmark_writes_chance_base_and_ceiling_per_task_and_category(
    tmp_path: Path,
) -> None:
    results = run_demon_benchmark(tmp_path / "run", CONFIG, progress=False)
    assert set(results["tasks"]) == set(CONFIG.tasks)
    assert not results["base"]["shipped"]  # a tiny recipe is not the shipped one
    for entry in results["tasks"].values():
        assert entry["n"] == 6
        for key in ("base", "ceiling"):
            low, high = entry[key]["ci95"]
            assert 0.0 <= low <= entry[key]["value"] <= high <= 1.0
    reasoning = results["categories"]["multi_image_reasoning"]
    assert reasoning["tasks"] == ["SameCount", "SamePlaces"]
    expected = category_score([results["tasks"][t]["base"]["value"] for t in reasoning["tasks"]])
    assert reasoning["base"]["value"] == pytest.approx(expected / 100)
    assert results["categories"]["visual_relation_inference"]["tasks"] == ["SpotTheEdit"]
    written = json.loads((tmp_path / "run" / RESULTS).read_text())
    assert written["tasks"] == results["tasks"]
    table = (tmp_path / "run" / "demon_benchmark.md").read_text()
    assert "| SameCount | multi_image_reasoning | Accuracy |" in table
    assert (tmp_path / "run" / "demon_benchmark.png").stat().st_size > 0
    # Per-sample predictions are where the harness puts them, for the base and each ceiling.
    assert (tmp_path / "run" / "eval" / "base" / "SameCount" / "pred.json").is_file()
    ceiling_eval = tmp_path / "run" / "eval" / "ceiling" / "SpotTheEdit"
    assert (ceiling_eval / "SpotTheEdit" / "pred.json").is_file()

    # A rerun reuses data, models and predictions: nothing is regenerated.
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "run").rglob("pred.json")}
    again = run_demon_benchmark(tmp_path / "run", CONFIG, progress=False)
    assert again["tasks"] == results["tasks"]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_summarise_aggregates_by_category_with_intervals() -> None:
    card = {
        "tasks": {
            "A": {"category": "c1", "metric": "Accuracy", "chance": {"test": 0.5}},
            "B": {"category": "c1", "metric": "Accuracy", "chance": {"test": 0.25}},
            "C": {"category": "c2", "metric": "Rouge-L f", "chance": {"test": 0.1}},
        }
    }
    base = {"A": [1.0, 1.0, 0.0, 0.0], "B": [1.0, 1.0, 1.0, 1.0], "C": [0.2, 0.4]}
    result = summarise(card, ("A", "B", "C"), base, None, resamples=200)
    c1 = result["categories"]["c1"]
    assert c1["chance"] == pytest.approx(0.375)
    assert c1["base"]["value"] == pytest.approx(0.75)  # mean of 0.5 and 1.0, not of 8 samples
    low, high = c1["base"]["ci95"]
    assert 0.5 <= low < 0.75 < high <= 1.0
    assert set(result["tasks"]["C"]["base"]) == {"value", "ci95"}  # the one shape
    assert result["tasks"]["C"]["base"]["value"] == pytest.approx(0.3)
    assert "ceiling" not in result["tasks"]["A"]
    rows = markdown_table({"tasks": result["tasks"], "categories": result["categories"]})
    assert "| **c1** | 2 task(s) | mean | 37.5 | 75.0 [" in rows

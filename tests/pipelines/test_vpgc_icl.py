"""The ICL question's pipeline pieces (``drum.pipelines.vpgc_icl``) and its CLI's checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from drum.cli.app import app
from drum.pipelines.vpgc_icl import _icl_rows, final_drum_embedder, markdown_table, render_plot

runner = CliRunner()


def _eval(values: dict[tuple[str, str, int, int | None], float]) -> dict:
    rows = [
        {
            "task": task,
            "strategy": strategy,
            "shots": shots,
            "seed": seed,
            "metric": {"vqa_accuracy": {"value": value, "ci95": [0, 1]}, "exact": {"value": 0}},
        }
        for (task, strategy, shots, seed), value in values.items()
    ]
    return {"rows": rows}


def test_icl_rows_put_base_beside_adapter_and_average_seeds() -> None:
    base = _eval(
        {("vqa", "random", 4, 0): 0.2, ("vqa", "random", 4, 1): 0.4, ("vqa", "drum", 4, None): 0.7}
    )
    adapter = _eval(
        {("vqa", "random", 4, 0): 0.1, ("vqa", "random", 4, 1): 0.3, ("vqa", "drum", 4, None): 0.6}
    )
    rows = _icl_rows({"base": base, "adapter": adapter})
    assert rows == [
        {
            "task": "vqa",
            "strategy": "drum",
            "shots": 4,
            "metric": "vqa_accuracy",
            "base": 0.7,
            "adapter": 0.6,
        },
        {
            "task": "vqa",
            "strategy": "random",
            "shots": 4,
            "metric": "vqa_accuracy",
            "base": pytest.approx(0.3),
            "adapter": pytest.approx(0.2),
        },
    ]


def test_table_and_plot_render_from_the_results(tmp_path: Path) -> None:
    interval = {"score": 0.25, "ci95": [0.2, 0.3], "n": 10}
    results = {
        "probes": {"vqa_oracle1": {"base": interval, "adapter": {**interval, "score": 0.5}}},
        "icl": [
            {
                "task": "vqa",
                "strategy": "drum",
                "shots": 8,
                "metric": "m",
                "base": 0.5,
                "adapter": 0.4,
            }
        ],
    }
    table = markdown_table(results)
    assert "| vqa_oracle1 | 25.0 [20.0, 30.0] | 50.0 [20.0, 30.0] |" in table
    assert "| vqa | drum | 8 | m | 50.0 | 40.0 | -10.0 |" in table
    path = render_plot(results, tmp_path / "plot.png")
    assert Image.open(path).size[0] > 100


def test_the_drum_embedder_is_read_from_the_demo_run(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no DRUM mining run"):
        final_drum_embedder(tmp_path)
    run = tmp_path / "drum" / "abc"
    run.mkdir(parents=True)
    (run / "mining.json").write_text(json.dumps({"final_embedder": "x/round_1"}), encoding="utf-8")
    assert final_drum_embedder(tmp_path) == Path("x/round_1")


def test_cli_refuses_a_directory_that_is_no_demo_run(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["vpgc", "icl", "--out", str(tmp_path / "o"), "--demo", str(tmp_path)]
    )
    assert result.exit_code != 0
    assert "no demo run there" in result.output

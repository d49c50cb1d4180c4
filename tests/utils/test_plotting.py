"""Report figures: CI error bars in percent, PNGs written whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from drum.results import Estimate
from drum.utils.plotting import new_figure, percent_error_bars, save_png


def test_error_bars_are_the_distances_to_the_interval_in_percent() -> None:
    values, (below, above) = percent_error_bars(
        [Estimate(0.5, 0.4, 0.7), Estimate(0.25, 0.25, 0.25), Estimate(0.3, 0.31, 0.4)]
    )
    assert values == pytest.approx([50.0, 25.0, 30.0])
    assert below == pytest.approx([10.0, 0.0, 0.0])  # never negative, even off-centre
    assert above == pytest.approx([20.0, 0.0, 10.0])


def test_save_png_writes_a_png(tmp_path: Path) -> None:
    figure = new_figure((2.0, 2.0))
    figure.subplots().bar([0, 1], [1, 2])
    path = save_png(figure, tmp_path / "plot.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind

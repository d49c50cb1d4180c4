"""Figures for the reports: made without pyplot, saved as PNG atomically, CI error bars.

Every report renders its plot from its JSON; these are the steps they share.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from drum.utils.io import atomic_write_bytes


def new_figure(figsize: tuple[float, float]) -> Any:
    """A ``matplotlib.figure.Figure`` on an Agg canvas (no pyplot: no display, no global
    figure state), laid out by matplotlib's constrained layout."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_png(figure: Any, path: str | os.PathLike[str], dpi: int = 100) -> Path:
    """``figure`` as a PNG at ``path``, written atomically."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    path = Path(path)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def percent_error_bars(
    entries: Sequence[Mapping[str, Any]],
) -> tuple[list[float], list[list[float]]]:
    """Scores in % and matplotlib's asymmetric ``yerr`` (``[below, above]``, never negative)
    from entries ``{"score", "ci95": [low, high]}`` given as fractions; an entry without
    ``ci95`` gets a zero-width bar."""
    values = [100 * entry["score"] for entry in entries]
    bounds = [entry.get("ci95", (entry["score"], entry["score"])) for entry in entries]
    below = [max(0.0, v - 100 * low) for v, (low, _) in zip(values, bounds, strict=True)]
    above = [max(0.0, 100 * high - v) for v, (_, high) in zip(values, bounds, strict=True)]
    return values, [below, above]

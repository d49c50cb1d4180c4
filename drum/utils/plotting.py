"""Figures for the reports: made without pyplot, saved as PNG atomically, CI error bars.

Every report renders its plot from its JSON; these are the steps they share.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drum.utils.io import atomic_write_bytes

if TYPE_CHECKING:
    from drum.results import Estimate


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
    estimates: Sequence[Estimate],
) -> tuple[list[float], list[list[float]]]:
    """Values in % and matplotlib's asymmetric ``yerr`` (``[below, above]``, never negative)
    from estimates given as fractions (``Estimate.from_json`` reads an entry without ``ci95``
    as a zero-width interval)."""
    values = [100 * estimate.value for estimate in estimates]
    below = [max(0.0, v - 100 * e.low) for v, e in zip(values, estimates, strict=True)]
    above = [max(0.0, 100 * e.high - v) for v, e in zip(values, estimates, strict=True)]
    return values, [below, above]

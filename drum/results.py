"""The results vocabulary: an estimate with its 95% interval, how result files store it, and
how tables show it.

* One type: ``Estimate(value, low, high)``.
* One JSON shape: ``{"value": v, "ci95": [low, high]}`` (``Estimate.to_json``; extra keys such
  as ``n`` may sit beside it). ``Estimate.from_json`` reads it back and also reads the shapes
  result files were written in before, ``{"score", "ci95"}`` (DEMON scores and the DEMON /
  VPG-C pipelines) and ``{"mean", "ci95"}`` (retrieval quality), an entry without ``ci95`` as
  a zero-width interval: every saved result still renders.
* One formatter: ``Estimate.format`` / ``Estimate.parts`` (value decimals, bound decimals, a
  scale such as 100 for percent, compact bounds ``[.51,.63]`` for the terminal), so each
  table keeps its own number format through parameters, not a formatter of its own.
* One table helper: ``markdown_table_lines(header, rows)``.

Example::

    Estimate(0.5123, 0.47, 0.55).format(bound_decimals=2)  # "0.512 [0.47, 0.55]"
    Estimate.from_json({"score": 0.5, "ci95": [0.4, 0.6]}).format(1, scale=100)
    # "50.0 [40.0, 60.0]"
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# The key of an estimate's value: the canonical one first, then those of older result files.
VALUE_KEYS = ("value", "score", "mean")
MISSING = "–"  # a table cell for a combination that was not run


def short_number(value: float, decimals: int = 2) -> str:
    """``0.51`` -> ``.51``, ``-0.05`` -> ``-.05``; other values as ``f"{value:.{decimals}f}"``."""
    text = f"{value:.{decimals}f}"
    if text.startswith("0."):
        return text[1:]
    if text.startswith("-0."):
        return "-" + text[2:]
    return text


@dataclass(frozen=True)
class Estimate:
    """A point estimate and its 95% interval ``[low, high]`` (bootstrap, ``drum.metrics.stats``)."""

    value: float
    low: float
    high: float

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> Estimate:
        """The estimate an entry of any result file holds (module docstring: the canonical
        shape and the older ones)."""
        key = next((key for key in VALUE_KEYS if key in entry), None)
        if key is None:
            raise KeyError(f"no estimate in an entry with keys {sorted(entry)}: need {VALUE_KEYS}")
        value = entry[key]
        low, high = entry.get("ci95") or (value, value)
        return cls(value, low, high)

    def to_json(self) -> dict[str, Any]:
        """``{"value": v, "ci95": [low, high]}``, the one shape results are written in."""
        return {"value": self.value, "ci95": [self.low, self.high]}

    def parts(
        self,
        decimals: int = 3,
        bound_decimals: int | None = None,
        scale: float = 1,
        compact: bool = False,
    ) -> tuple[str, str]:
        """The value and the interval as text: ``("0.512", "[0.47, 0.55]")``.

        ``bound_decimals`` defaults to ``decimals``; ``scale`` multiplies every number first
        (100: percent); ``compact`` drops the space and the leading zeros (``[.47,.55]``).
        """
        bound = decimals if bound_decimals is None else bound_decimals
        low, high = scale * self.low, scale * self.high
        if compact:
            interval = f"[{short_number(low, bound)},{short_number(high, bound)}]"
        else:
            interval = f"[{low:.{bound}f}, {high:.{bound}f}]"
        return f"{scale * self.value:.{decimals}f}", interval

    def format(
        self,
        decimals: int = 3,
        bound_decimals: int | None = None,
        scale: float = 1,
        compact: bool = False,
    ) -> str:
        """``"0.512 [0.47, 0.55]"``: ``parts`` joined by a space."""
        return " ".join(self.parts(decimals, bound_decimals, scale, compact))


def markdown_table_lines(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """A markdown table as lines: ``| a | b |``, the ``|---|---|`` rule, then one per row."""
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]

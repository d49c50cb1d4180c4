"""Are two ``drum demo`` runs' tables the same, cell for cell?

    .venv/bin/python benchmarks/compare_demo.py runs/demo_before runs/demo_after

Compares, between the two ``--out`` directories: every ``results/*.md`` (the rendered tables,
character for character but for absolute paths in backticks), the metric values and
intervals of every ``icl_results.json`` row (keyed by task, strategy, shots, seed), the
``retrieval_quality.json`` rows, each mining round's validation and feedback statistics
(``drum/*/mining.json``: the rounds table) and the per-query predictions and scores
(``icl_queries.jsonl``). Timings, paths and provenance (the tables' ``- git:`` line: a run
from a copy of the code that is no git checkout has none) are not compared. The mining's
feedback statistics (mean log-likelihood gains, shown in no table) are compared to a relative
``FEEDBACK_RTOL``: scoring is exact only up to float rounding (an image encoded in another
batch, a demonstration's key/value prefix computed once), everything else exactly.
Prints one line per check and both runs' stage times (``demo_timings.json``) with their ratio;
exits 1 if anything differs.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path
from typing import Any


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


FEEDBACK_RTOL = 1e-6


def _table_text(path: Path) -> str:
    # The header names the models by absolute path (where each run's code tree is): compared
    # without it, their fingerprints beside it still are.
    text = re.sub(r"`/[^`]*`", "`<path>`", path.read_text(encoding="utf-8"))
    return re.sub(r"(?m)^- git: .*\n", "", text)


def _close(a: Any, b: Any) -> bool:
    """``a == b`` but for floats, equal within a relative ``FEEDBACK_RTOL``."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=FEEDBACK_RTOL)
    return a == b


class _Round(dict):
    """A mining round's record: validation exactly, feedback statistics by ``_close``."""

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, dict)
            and self.get("validation") == other.get("validation")
            and _close(self.get("feedback"), other.get("feedback"))
        )

    def __ne__(self, other: object) -> bool:
        return not self == other


def _icl_rows(run: Path) -> dict[tuple, Any]:
    rows = _json(run / "results" / "icl_results.json")["rows"]
    return {
        (r["task"], r["strategy"], r["shots"], r["seed"]): (
            r["metric"],
            r["n_queries"],
            r["truncated_prompts"],
        )
        for r in rows
    }


def _quality_rows(run: Path) -> list[Any]:
    rows = _json(run / "results" / "retrieval_quality.json")["rows"]
    return [{k: v for k, v in row.items() if not k.endswith("seconds")} for row in rows]


def _rounds(run: Path) -> list[Any]:
    (summary,) = (run / "drum").glob("*/mining.json")
    return [
        _Round(validation=r["validation"], feedback=r.get("feedback"))
        for r in _json(summary)["rounds"]
    ]


def _queries(run: Path) -> list[Any]:
    lines = (run / "results" / "icl_queries.jsonl").read_text(encoding="utf-8").splitlines()
    keep = ("task", "strategy", "shots", "seed", "query_id", "demo_ids", "prediction", "scores")
    return [{k: json.loads(line)[k] for k in keep} for line in lines]


def compare(before: Path, after: Path) -> list[tuple[str, bool, str]]:
    """``(check, same, detail)`` for every check (module docstring)."""
    checks: list[tuple[str, bool, str]] = []
    names = sorted(p.name for p in (before / "results").glob("*.md"))
    for name in names:
        a, b = before / "results" / name, after / "results" / name
        same = b.is_file() and _table_text(a) == _table_text(b)
        checks.append((f"results/{name}", same, "" if same else "differs or missing"))
    for label, read in (
        ("icl_results.json rows", _icl_rows),
        ("retrieval_quality.json rows", _quality_rows),
        ("mining rounds (validation, feedback)", _rounds),
        ("icl_queries.jsonl predictions and scores", _queries),
    ):
        a, b = read(before), read(after)
        if isinstance(a, dict):
            diff = [key for key in a.keys() | b.keys() if a.get(key) != b.get(key)]
            detail = f"{len(a)} rows" if not diff else f"{len(diff)} rows differ, e.g. {diff[0]}"
        else:
            diff = [i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y]
            if len(a) != len(b):
                diff.append(min(len(a), len(b)))
            detail = f"{len(a)} rows" if not diff else f"{len(diff)} rows differ, e.g. #{diff[0]}"
        checks.append((label, not diff, detail))
    return checks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path, help="one demo --out directory")
    parser.add_argument("after", type=Path, help="the other")
    args = parser.parse_args()
    checks = compare(args.before, args.after)
    for label, same, detail in checks:
        print(f"{'same' if same else 'DIFF'}  {label}  {detail}")
    timings = [_json(run / "results" / "demo_timings.json") for run in (args.before, args.after)]
    for key in timings[0]:
        a, b = timings[0][key], timings[1].get(key)
        ratio = f"{a / b:.2f}x" if b else ""
        print(f"{key:20s} {a:8.1f} {b if b is not None else '':>8} {ratio}")
    total = [sum(t.values()) for t in timings]
    print(f"{'total':20s} {total[0]:8.1f} {total[1]:8.1f} {total[0] / total[1]:.2f}x")
    return 0 if all(same for _, same, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Shared benchmark helpers: a best-of timer and a reporter (rich table + JSON + runs/bench file).

Benchmarks are scripts run as ``python benchmarks/bench_x.py``, so they import this module as
``common`` (the script's directory is first on ``sys.path``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from drum.utils.io import atomic_write_text

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "runs" / "bench"
_VERSIONED = ("numpy", "faiss-cpu", "torch", "transformers")


def timeit(fn: Callable[[], object], repeat: int = 3) -> float:
    """Best wall-clock seconds of ``repeat`` calls; best-of filters out scheduler noise."""
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def environment() -> dict[str, Any]:
    """What a number depends on: versions, cores, time, commit (plus whether it was dirty)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for package in _VERSIONED:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    status = _git("status", "--porcelain")
    return {
        "versions": versions,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        # Other processes on a shared machine skew timings; the load average shows it.
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_sha": _git("rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),
        "argv": sys.argv,
    }


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def report(name: str, rows: list[dict], meta: dict) -> None:
    """Print ``rows`` as a table, then the full JSON; also write it to ``runs/bench/<name>.json``.

    ``meta`` (the benchmark's parameters) is merged over the environment description.
    """
    columns: list[str] = []
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    table = Table(title=name)
    for column in columns:
        table.add_column(column, justify="left" if column in ("case", "name") else "right")
    for row in rows:
        table.add_row(*(_cell(row.get(column)) for column in columns))
    # A fixed width keeps the table readable when stdout is a pipe or a log file.
    Console(width=max(100, 14 * len(columns))).print(table)

    payload = {"benchmark": name, "meta": {**environment(), **meta}, "rows": rows}
    text = json.dumps(payload, indent=2, default=str) + "\n"
    print(text, end="", flush=True)
    path = RESULTS_DIR / f"{name}.json"
    atomic_write_text(path, text)
    print(f"wrote {path.relative_to(REPO_ROOT)}", file=sys.stderr)

"""Run every ``benchmarks/bench_*.py`` in its own subprocess; exit non-zero if any fails.

Usage: ``python benchmarks/run.py [--quick] [NAME ...]`` where NAME (e.g. ``index``) picks
benchmarks by substring; by default all run. A benchmark that exits with ``SKIPPED`` (77, as
``bench_gpu.py`` does without a GPU) is reported skipped, not failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
SKIPPED = 77


def discover(names: list[str] | None = None) -> list[Path]:
    """The benchmark scripts, sorted, filtered to those whose stem contains one of ``names``."""
    scripts = sorted(BENCH_DIR.glob("bench_*.py"))
    if names:
        scripts = [path for path in scripts if any(name in path.stem for name in names)]
    return scripts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    parser.add_argument("names", nargs="*", help="run only benchmarks whose name contains these")
    args = parser.parse_args(argv)

    scripts = discover(args.names)
    if not scripts:
        print(f"no benchmarks match {args.names}", file=sys.stderr)
        return 2
    results: list[tuple[str, int, float]] = []
    for script in scripts:
        command = [sys.executable, str(script), *(["--quick"] if args.quick else [])]
        print(f"==> {' '.join(command[1:])}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        # Separate processes: one benchmark's memory and thread pools cannot skew the next.
        returncode = subprocess.run(command, cwd=BENCH_DIR.parent).returncode
        results.append((script.stem, returncode, time.perf_counter() - start))

    for stem, returncode, seconds in results:
        status = {0: "ok", SKIPPED: "skipped"}.get(returncode, f"FAILED (exit {returncode})")
        print(f"{stem:<30} {status:<20} {seconds:8.1f}s", file=sys.stderr)
    return 0 if all(returncode in (0, SKIPPED) for _, returncode, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())

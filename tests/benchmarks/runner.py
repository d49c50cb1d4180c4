"""Run a ``benchmarks/`` script as a user would (a subprocess from the repository root, one
torch thread, offline) and return the JSON it prints after its table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def run_benchmark(script: str, *args: str, timeout: int = 300) -> dict[str, Any]:
    """``benchmarks/<script> <args>``'s JSON; the test fails with its stderr's end if it exits
    with an error."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    return json.loads("\n".join(lines[lines.index("{") :]))  # the JSON follows the table

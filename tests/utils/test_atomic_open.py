"""A rerun that writes a target removes the temporaries a killed writer of that target left, and
never a live writer's (``drum.utils.io.remove_stale_temps``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from drum.utils.io import STALE_TEMP_AGE, atomic_write_text

# A writer that opens a temporary of TARGET, writes half of it, then is killed (-9) or waits for
# a line on stdin and finishes.
WRITER = """
import os, signal, sys
from drum.utils.io import atomic_open
with atomic_open(sys.argv[1]) as handle:
    handle.write("half")
    handle.flush()
    if sys.argv[2] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    print("ready", flush=True)
    sys.stdin.readline()
    handle.write(" and the rest")
"""


def _writer(target: Path, how: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target), how],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_a_rerun_removes_the_temporary_a_killed_writer_left(tmp_path: Path) -> None:
    target = tmp_path / "results.json"
    assert _writer(target, "kill").wait() == -9
    (left,) = _temps(tmp_path)
    assert left.startswith(".results.json.")
    other = tmp_path / "other.json"
    assert _writer(other, "kill").wait() == -9
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    # Only the target's own temporaries: another target's waits for its own rerun.
    assert [name for name in _temps(tmp_path) if name.startswith(".results.json.")] == []
    assert len(_temps(tmp_path)) == 1


def test_a_live_writers_temporary_is_never_removed(tmp_path: Path) -> None:
    target = tmp_path / "results.json"
    writer = _writer(target, "wait")
    assert writer.stdout is not None and writer.stdout.readline() == "ready\n"
    (live,) = _temps(tmp_path)
    atomic_write_text(target, "mine")
    assert _temps(tmp_path) == [live]
    writer.communicate("go\n")
    assert writer.returncode == 0
    assert target.read_text() == "half and the rest"
    assert _temps(tmp_path) == []


def test_temporaries_without_a_checkable_writer_go_only_when_a_day_old(tmp_path: Path) -> None:
    target = tmp_path / "results.json"
    old_style = tmp_path / ".results.json.abc12_xy.tmp"  # named before the pid was
    other_host = tmp_path / ".results.json.4242-00000000.abcdefgh.tmp"
    fresh = tmp_path / ".results.json.k9k9k9k9.tmp"
    for path in (old_style, other_host, fresh):
        path.write_text("half")
    day_ago = time.time() - STALE_TEMP_AGE - 60
    for path in (old_style, other_host):
        os.utime(path, (day_ago, day_ago))
    atomic_write_text(target, "new")
    assert _temps(tmp_path) == [fresh.name]

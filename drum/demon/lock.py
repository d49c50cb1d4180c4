"""One DEMON run per output folder: an exclusive lock on ``<out>/demon.lock``.

Each batch rewrites ``<out>/<Task>/pred.json`` whole from what it read (``append_predictions``),
so two runs on one folder drop each other's batches. ``output_lock`` is held from before the
model loads (``drum demon eval``) to the end of scoring; a second run is refused at once
(``OutputLockedError``), quoting the holder the file records: its pid, host and start time.

How it stays safe:

- the lock is ``flock`` on the file, which the kernel releases when its process dies: a killed
  run leaves its file (with a dead pid in it) and the next run simply takes it, with no guess
  about whether a pid is alive (a recycled pid, another host);
- a clean end unlinks the file while still holding it; a run that locked a file unlinked
  meanwhile lets go and tries the file now at the path, so two runs never both hold one;
- under ``torchrun`` only rank 0 takes it: the ranks of one run share the folder legitimately
  (each writes its own part, rank 0 merges, ``drum.demon.sharded``);
- it is re-entrant in one process (the CLI takes it before the model loads, ``evaluate_demon``
  again around generation and scoring).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from drum.utils.distributed import DistContext

LOCK_FILE = "demon.lock"

# realpath of a lock file this process holds -> [its descriptor, how many holders nest, whether
# taking it created the output folder (1) or not (0)]
_HELD: dict[str, list[int]] = {}


class OutputLockedError(RuntimeError):
    """The output folder is in use by another run; the message names the holder."""


def lock_path(out_dir: str | os.PathLike[str]) -> Path:
    """``<out_dir>/demon.lock``."""
    return Path(out_dir) / LOCK_FILE


def _holder(fd: int) -> str:
    try:
        record: Any = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        return f"pid {record['pid']} on host {record['host']}, started {record['started']}"
    except (OSError, ValueError, KeyError, TypeError):  # written this instant, or not ours
        return "its holder has not written its pid yet"


def _acquire(path: Path) -> int:
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise OutputLockedError(
                f"{path.parent} is in use by another DEMON run ({holder}; lock file {path}): "
                "expected one run per --out; wait for it to end or choose another --out"
            ) from None
        try:
            current = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            current = False
        if current:
            break
        os.close(fd)  # released and unlinked since we opened it: lock the file now there
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(record).encode("utf-8"), 0)
    return fd


def _release(path: Path, fd: int, created: bool) -> None:
    try:
        os.unlink(path)  # still held: no other run can have locked this file meanwhile
    except FileNotFoundError:
        pass
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
    if created:  # a run refused before writing anything leaves no empty folder behind
        try:
            path.parent.rmdir()
        except OSError:  # not empty: what the run wrote stays
            pass


@contextmanager
def output_lock(
    out_dir: str | os.PathLike[str], context: DistContext | None = None
) -> Iterator[None]:
    """Hold ``<out_dir>/demon.lock`` (created, with ``out_dir``, if absent) for the block; on
    a rank other than 0, do nothing.

    Example::

        with output_lock("runs/demon"):
            generate_predictions(lvlm, tasks, "runs/demon")

    Raises:
        OutputLockedError: another process holds it (the message names its pid, host and
            start time).
    """
    if context is not None and not context.is_main:
        yield
        return
    path = lock_path(out_dir)
    key = os.path.realpath(path)
    if key in _HELD:
        _HELD[key][1] += 1
    else:
        created = not path.parent.exists()
        path.parent.mkdir(parents=True, exist_ok=True)
        _HELD[key] = [_acquire(path), 1, int(created)]
    try:
        yield
    finally:
        _HELD[key][1] -= 1
        if _HELD[key][1] == 0:
            fd, _, created_folder = _HELD.pop(key)
            _release(path, fd, bool(created_folder))

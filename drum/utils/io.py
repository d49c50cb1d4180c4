"""Atomic file writes: a file is either its old content or its complete new content, never half.

Every writer goes to a temporary file in the destination's directory (same file system, so the
final ``os.replace`` is atomic) and renames it over the destination only after a flush + fsync.

A temporary file is named ``.<name>.<pid>-<host>.<random>.tmp`` (``<host>``: 8 hex digits of
the host name's SHA-1), so the writer that owns it can be told. A kill leaves it behind; the next
``atomic_open`` of the same target removes the temporaries of that target whose writer is gone:
those of this host whose process no longer exists, and any other (another host's, or one named
before the pid was in the name) whose file was last written over ``STALE_TEMP_AGE`` ago. A live
writer's temporary is never removed (a reused pid only keeps a dead one's temporary longer).

Directories (``atomic_directory``, ``remove_directory``) are never deleted in place: a
directory to delete is first renamed aside, so a kill mid-delete leaves a half-deleted folder
under a recognisable leftover name (``.<name>.<random>.<kind>``, kind ``staging``, ``old`` or
``trash``), never at ``path``. ``recover_directory(path)`` finishes what a killed call left:
the next ``atomic_directory(path)`` runs it first.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def _plain_open_mode(path: Path) -> int:
    """The mode ``open(path, "w")`` would leave: the existing file's, else 0o666 minus the umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        pass
    # The only portable way to read the umask is to set it and put it back.
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


# A temporary file whose writer cannot be checked (another host's, or named without its pid) is
# taken as abandoned when it was last written this long ago: no DRUM write takes a day.
STALE_TEMP_AGE = 24 * 3600.0
_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]
# .<target>.<pid>-<host>.<random>.tmp, or .<target>.<random>.tmp (before the pid was named).
_TEMP = re.compile(r"\.(?P<target>.+?)\.(?:(?P<pid>\d+)-(?P<host>[0-9a-f]{8})\.)?[a-z0-9_]{8}\.tmp")
# Per directory, the stale temporaries found by this process's first write there, by target:
# one listing per directory, not one per write (an import writes thousands of images into one).
_STALE: dict[str, dict[str, list[str]]] = {}


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _stale_temps(directory: Path) -> dict[str, list[str]]:
    """The temporaries in ``directory`` whose writer is gone, by the name of their target."""
    stale: dict[str, list[str]] = {}
    now = time.time()
    with os.scandir(directory) as entries:
        for entry in entries:
            match = _TEMP.fullmatch(entry.name)
            if match is None or not entry.is_file(follow_symlinks=False):
                continue
            gone = False
            if match["pid"] is not None and match["host"] == _HOST:
                gone = not _alive(int(match["pid"]))
            else:
                with contextlib.suppress(FileNotFoundError):
                    gone = now - entry.stat(follow_symlinks=False).st_mtime > STALE_TEMP_AGE
            if gone:
                stale.setdefault(match["target"], []).append(entry.name)
    return stale


def remove_stale_temps(path: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporaries of target ``path`` left by killed writers (see the module
    docstring for the rule); returns what was removed. ``atomic_open`` calls it."""
    path = Path(path)
    key = os.path.abspath(path.parent)
    if key not in _STALE:
        _STALE[key] = _stale_temps(path.parent)
    removed = []
    for name in _STALE[key].pop(path.name, []):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path.parent / name)
            removed.append(path.parent / name)
    return removed


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; rename it onto ``path`` on success.

    On an exception the temporary file is removed and ``path`` keeps its previous content;
    temporaries of ``path`` left by killed writers are removed first (``remove_stale_temps``).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open supports modes 'w' and 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.{os.getpid()}-{_HOST}.", suffix=".tmp", dir=path.parent
    )
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            # mkstemp creates the file 0o600; without this every written file would end up private.
            os.chmod(tmp_name, _plain_open_mode(path))
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_open(path, "w") as handle:
        handle.write(text)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


# Leftover kinds beside a directory ``path``: ``.<path.name>.<token>.<kind>``.
STAGING, OLD, TRASH = "staging", "old", "trash"


def _leftover(path: Path, kind: str) -> Path:
    return path.parent / f".{path.name}.{secrets.token_hex(4)}.{kind}"


_LEFTOVER = re.compile(rf"\.(?P<target>.+)\.[0-9a-f]{{8}}\.(?P<kind>{STAGING}|{OLD}|{TRASH})")


def leftover_target(name: str) -> str | None:
    """The directory name a leftover named ``name`` belongs to, or None if it is none."""
    match = _LEFTOVER.fullmatch(name)
    return match["target"] if match else None


def _leftovers(path: Path, kind: str) -> list[Path]:
    if not path.parent.is_dir():
        return []
    return sorted(
        p
        for p in path.parent.iterdir()
        if (match := _LEFTOVER.fullmatch(p.name))
        and match["target"] == path.name
        and match["kind"] == kind
    )


def remove_directory(path: str | os.PathLike[str]) -> None:
    """Delete the directory ``path`` (nothing if it is absent) as one rename: it is renamed to a
    trash name first, then deleted, so a kill never leaves it half-deleted at ``path``."""
    path = Path(path)
    if not path.exists():
        return
    trash = _leftover(path, TRASH)
    os.rename(path, trash)
    shutil.rmtree(trash, ignore_errors=True)  # what a failure leaves, recover_directory removes


def recover_directory(path: str | os.PathLike[str]) -> None:
    """Undo or finish what a killed ``atomic_directory(path)`` / ``remove_directory(path)`` left.

    A kill between ``atomic_directory``'s two renames leaves no ``path`` and the old directory
    set aside: it is renamed back, so ``path`` holds its old content again. Every staging
    directory (a replacement never renamed in), every set-aside old directory and every trash
    folder of ``path`` is then deleted.
    """
    path = Path(path)
    old = _leftovers(path, OLD)
    if old and not path.exists():
        # One swap at a time runs recover first, so a missing path has at most one old copy.
        os.rename(old.pop(), path)
    for leftover in (*_leftovers(path, STAGING), *old, *_leftovers(path, TRASH)):
        shutil.rmtree(leftover, ignore_errors=True)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty staging directory beside ``path``; on success it replaces ``path``.

    On an exception the staging directory is removed and ``path`` keeps its old content, so a
    directory of results (a dataset, a saved model) is never seen half written. The swap is
    three steps, each safe to be killed after: rename the old directory aside, rename the new
    one in, delete the old one. Leftovers of a killed earlier call are recovered first
    (``recover_directory``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover_directory(path)
    staging = _leftover(path, STAGING)
    staging.mkdir()
    old: Path | None = None
    try:
        yield staging
        if path.exists():
            old = _leftover(path, OLD)
            os.rename(path, old)
        try:
            os.rename(staging, path)
        except BaseException:
            if old is not None:
                os.rename(old, path)
            raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)

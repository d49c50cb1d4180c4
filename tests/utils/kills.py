"""Simulated kills for the directory tests: the n-th file-system step raises ``Killed``, and so
does every later one (a killed process does nothing more)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


class Killed(BaseException):
    """A kill: a ``BaseException``, so no ``except Exception`` in the code under test stops it."""


class KillAt:
    """Counts ``os.rename`` / ``os.replace`` / ``shutil.rmtree`` calls and kills at call ``n``.

    A killed ``rmtree`` first deletes one file of its tree, so the folder is left half
    deleted, as a real kill in the middle of a deletion leaves it.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, n: int) -> None:
        self.n, self.calls = n, 0
        self._monkeypatch = monkeypatch
        rename, replace, rmtree = os.rename, os.replace, shutil.rmtree

        def step(real: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.calls >= self.n:
                if real is rmtree and self.calls == self.n:
                    files = sorted(p for p in Path(args[0]).rglob("*") if p.is_file())
                    if files:
                        files[0].unlink()
                raise Killed(f"killed at step {self.calls}")
            return real(*args, **kwargs)

        monkeypatch.setattr(os, "rename", lambda *a, **k: step(rename, *a, **k))
        monkeypatch.setattr(os, "replace", lambda *a, **k: step(replace, *a, **k))
        monkeypatch.setattr(shutil, "rmtree", lambda *a, **k: step(rmtree, *a, **k))

    def undo(self) -> None:
        """The next run: the real file system calls again."""
        self._monkeypatch.undo()


def tree(path: Path) -> dict[str, str]:
    """``relative path -> text`` of every file under ``path``."""
    return {str(p.relative_to(path)): p.read_text() for p in sorted(path.rglob("*")) if p.is_file()}


def count_steps(monkeypatch: pytest.MonkeyPatch, action: Callable[[], Any]) -> int:
    """How many counted steps ``action`` takes when nothing kills it."""
    counter = KillAt(monkeypatch, n=10**9)
    action()
    counter.undo()
    return counter.calls

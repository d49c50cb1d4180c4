"""A training run killed right after its n-th checkpoint, for the resume tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

from drum.utils.checkpoint import Checkpointer


@contextmanager
def killed_after_checkpoint(n: int) -> Iterator[None]:
    """Inside the block, the ``n``-th ``Checkpointer.save`` (1-based) writes its checkpoint and
    then raises ``KeyboardInterrupt``, as a run killed at that moment would stop."""
    original = Checkpointer.save
    calls = {"n": 0}

    def save_then_die(self: Checkpointer, *args: Any, **kwargs: Any) -> Any:
        folder = original(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return folder

    with mock.patch.object(Checkpointer, "save", save_then_die):
        yield

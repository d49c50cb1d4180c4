"""Batching across requests for ``drum serve``: ``BatchingConfig`` (how many requests one model
pass may answer, how long to wait for them) and ``Batcher``, which gathers the requests of many
threads into batches and runs each batch on one thread at a time.

Contract: ``Batcher.submit(item)`` blocks its caller until ``run`` has answered ``item`` and
returns that answer (or raises the exception ``run`` gave for it). Requests that arrive while
a batch runs queue; when it ends, the oldest of them (at most ``max_batch_size``) form the next
batch. A batch starting on a short queue first waits up to ``batch_wait_ms`` for it to fill
(0: never waits), so requests sent at nearly the same moment go together. ``run`` sees one
batch at a time, in arrival order, and returns one outcome per item, an ``Exception`` for an
item that failed: one item's failure is that item's alone. ``max_batch_size`` 1 runs each
request alone in arrival order, as one lock would.

There is no thread of its own: the first caller to find no batch running runs batches (the
queue's oldest first, its own among them) until its own item is answered, then hands over to a
waiting caller. ``batches``, ``requests``, ``largest`` and ``busy_seconds`` (time in ``run``)
say what ran (read them in-process: tests and ``benchmarks/bench_serve.py`` do).

Example::

    batcher = Batcher(lambda items: [x * 2 for x in items], BatchingConfig(max_batch_size=8))
    batcher.submit(21)  # 42, in a batch with whatever other threads submitted meanwhile
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_MAX_BATCH_SIZE = 16
DEFAULT_BATCH_WAIT_MS = 2.0


@dataclass(frozen=True)
class BatchingConfig:
    """``max_batch_size``: requests one batch answers at most (1: one at a time, as before
    batching); ``batch_wait_ms``: how long a batch starting on a short queue waits for more
    requests (0: it runs at once with what has queued)."""

    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS

    def __post_init__(self) -> None:
        size = self.max_batch_size
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ValueError(f"max_batch_size must be an integer >= 1, got {size!r}")
        wait = self.batch_wait_ms
        if isinstance(wait, bool) or not isinstance(wait, int | float) or not math.isfinite(wait):
            raise ValueError(f"batch_wait_ms must be a number of milliseconds, got {wait!r}")
        if wait < 0:
            raise ValueError(f"batch_wait_ms must be >= 0, got {wait!r}")


class _Slot:
    """One submitted item and, once its batch ran, its outcome."""

    __slots__ = ("item", "done", "outcome")

    def __init__(self, item: Any) -> None:
        self.item = item
        self.done = False
        self.outcome: Any = None


class Batcher(Generic[T, R]):
    """Items of many threads run in batches by ``run`` (module docstring)."""

    def __init__(
        self, run: Callable[[list[T]], list[R | Exception]], config: BatchingConfig
    ) -> None:
        self.run = run
        self.config = config
        self._changed = threading.Condition()
        self._queue: deque[_Slot] = deque()
        self._running = False  # a caller is running batches (only one may)
        self.batches = 0  # batches run
        self.requests = 0  # items answered
        self.largest = 0  # the largest batch run
        self.busy_seconds = 0.0  # wall-clock seconds spent in run

    @property
    def queued(self) -> int:
        """Items waiting for a batch (not those running)."""
        with self._changed:
            return len(self._queue)

    def submit(self, item: T) -> R:
        """``item``'s outcome from ``run``: returned, or raised where it is an exception."""
        slot = _Slot(item)
        with self._changed:
            self._queue.append(slot)
            self._changed.notify_all()  # a batch waiting to fill sees one more
            while not slot.done and self._running:
                self._changed.wait()
            leads = not slot.done
            if leads:
                self._running = True
        if leads:
            try:
                while not slot.done:
                    self._run_next()
            finally:
                with self._changed:
                    self._running = False
                    self._changed.notify_all()  # a waiting caller takes over
        if isinstance(slot.outcome, Exception):
            raise slot.outcome
        return slot.outcome

    def _run_next(self) -> None:
        """Gather the next batch from the queue (waiting for it to fill), run it, hand out
        its outcomes."""
        size = self.config.max_batch_size
        with self._changed:
            if size > 1 and self.config.batch_wait_ms > 0:
                deadline = time.monotonic() + self.config.batch_wait_ms / 1000
                while len(self._queue) < size:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._changed.wait(left)
            batch = [self._queue.popleft() for _ in range(min(size, len(self._queue)))]
        # Should run end without outcomes (an interrupt), no caller waits for ever.
        outcomes: list[Any] = [RuntimeError("the batch did not finish")] * len(batch)
        started = time.perf_counter()
        try:
            outcomes = self.run([slot.item for slot in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"{len(outcomes)} outcomes for a batch of {len(batch)}")
        except Exception as error:  # run answers per item; this is run itself failing
            outcomes = [error] * len(batch)
        finally:
            with self._changed:
                for slot, outcome in zip(batch, outcomes, strict=True):
                    slot.outcome, slot.done = outcome, True
                self.batches += 1
                self.requests += len(batch)
                self.largest = max(self.largest, len(batch))
                self.busy_seconds += time.perf_counter() - started
                self._changed.notify_all()

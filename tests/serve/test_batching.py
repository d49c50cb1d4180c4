"""``drum.serve.batching``: items submitted by many threads run in batches of at most
``max_batch_size``, in arrival order, each caller getting its own outcome; one item's failure
is its own; ``max_batch_size`` 1 runs one at a time; ``BatchingConfig`` refuses bad values."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from drum.serve.batching import Batcher, BatchingConfig


class Recorder:
    """A ``run`` that records each batch, doubles each item, and fails items < 0; the first
    batch waits for ``gate`` (so that the others queue behind it)."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = threading.Event()
        self.started = threading.Event()
        self.threads: set[int] = set()

    def __call__(self, items: list[int]) -> list[Any]:
        if not self.batches:
            self.started.set()
            assert self.gate.wait(10)
        self.batches.append(list(items))
        self.threads.add(threading.get_ident())
        return [ValueError(f"bad {x}") if x < 0 else 2 * x for x in items]


def submit_all(batcher: Batcher, items: list[int]) -> dict[int, Any]:
    """Submit ``items[0]`` (which blocks the model), then the rest from threads of their own
    once it runs; release it when all the rest have queued. Outcomes by item."""
    outcomes: dict[int, Any] = {}

    def one(item: int) -> None:
        try:
            outcomes[item] = batcher.submit(item)
        except ValueError as error:
            outcomes[item] = error

    threads = [threading.Thread(target=one, args=(items[0],))]
    threads[0].start()
    assert batcher.run.started.wait(10)  # the first batch runs (and waits for the gate)
    deadline = time.monotonic() + 10
    for item in items[1:]:
        threads.append(threading.Thread(target=one, args=(item,)))
        threads[-1].start()
    while batcher.queued < len(items) - 1 and time.monotonic() < deadline:
        time.sleep(0.001)
    batcher.run.gate.set()
    for thread in threads:
        thread.join(10)
    return outcomes


@pytest.mark.parametrize("size", [1, 3, 16])
def test_requests_that_queue_while_busy_run_together_up_to_the_limit(size: int) -> None:
    run = Recorder()
    batcher = Batcher(run, BatchingConfig(max_batch_size=size, batch_wait_ms=0))
    items = list(range(10, 18))
    outcomes = submit_all(batcher, items)
    assert outcomes == {x: 2 * x for x in items}  # each caller its own answer
    assert run.batches[0] == [10]
    rest = [x for batch in run.batches[1:] for x in batch]
    assert sorted(rest) == items[1:]
    assert all(len(batch) <= size for batch in run.batches)
    # 7 queued behind the first: ceil(7 / size) batches, full ones first.
    assert [len(b) for b in run.batches[1:]] == [min(size, 7 - i) for i in range(0, 7, size)]
    assert batcher.batches == len(run.batches) and batcher.requests == len(items)
    assert batcher.largest == min(size, 7)


def test_one_failing_item_fails_alone() -> None:
    run = Recorder()
    batcher = Batcher(run, BatchingConfig(max_batch_size=8, batch_wait_ms=0))
    outcomes = submit_all(batcher, [1, 2, -3, 4])
    assert [sorted(batch) for batch in run.batches] == [[1], [-3, 2, 4]]
    assert outcomes[1] == 2 and outcomes[2] == 4 and outcomes[4] == 8
    assert isinstance(outcomes[-3], ValueError) and str(outcomes[-3]) == "bad -3"


def test_a_failing_run_fails_its_batch_and_the_batcher_goes_on() -> None:
    calls: list[list[int]] = []

    def run(items: list[int]) -> list[int]:
        calls.append(items)
        if len(calls) == 1:
            raise RuntimeError("the model failed")
        return items

    batcher = Batcher(run, BatchingConfig(max_batch_size=4))
    with pytest.raises(RuntimeError, match="the model failed"):
        batcher.submit(1)
    assert batcher.submit(2) == 2
    assert batcher.batches == 2 and batcher.queued == 0


def test_requests_sent_within_the_wait_go_together() -> None:
    batches: list[list[int]] = []
    batcher = Batcher(lambda items: batches.append(items) or items, BatchingConfig(8, 300.0))
    threads = [threading.Thread(target=batcher.submit, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    # The first waits up to 300 ms for the others, started microseconds later.
    assert sorted(x for b in batches for x in b) == [0, 1, 2, 3]
    assert len(batches) == 1, batches


def test_with_no_wait_a_lone_request_runs_at_once() -> None:
    batcher = Batcher(lambda items: items, BatchingConfig(16, 0))
    start = time.perf_counter()
    assert [batcher.submit(i) for i in range(20)] == list(range(20))
    assert batcher.batches == 20 and batcher.largest == 1
    assert time.perf_counter() - start < 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_batch_size": 0}, "max_batch_size must be an integer >= 1, got 0"),
        ({"max_batch_size": 2.0}, "max_batch_size must be an integer"),
        ({"max_batch_size": True}, "max_batch_size must be an integer"),
        ({"batch_wait_ms": -1}, "batch_wait_ms must be >= 0, got -1"),
        ({"batch_wait_ms": float("nan")}, "batch_wait_ms must be a number"),
        ({"batch_wait_ms": "2"}, "batch_wait_ms must be a number"),
    ],
)
def test_config_refuses_bad_values(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BatchingConfig(**kwargs)
    assert BatchingConfig(max_batch_size=1, batch_wait_ms=0).max_batch_size == 1

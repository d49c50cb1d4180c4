"""EmbeddingCache shared by several processes: nothing lost, nothing mixed up, nothing torn.

Writers (spawned processes, each with its own ``EmbeddingCache`` objects) hammer one directory
with many small lookups over keys shared by all of them and keys of their own, under two
embedders (two stores, two dimensions); a reader runs alongside, storing nothing. Vectors are
derived from the text alone (``FakeEmbedder``), so every one returned can be checked against
the vector its own key must have. The store written before this design (``vectors.npy`` +
``keys.json``, rewritten whole from each writer's copy) lost entries and returned other keys'
vectors here.
"""

from __future__ import annotations

import itertools
import multiprocessing
import queue
import random
import sqlite3
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from drum.embed import cache as cache_module
from drum.embed.cache import EmbeddingCache
from drum.testing import FakeEmbedder

SHARED = [f"shared text {i}" for i in range(150)]
EMBEDDERS = {"fake-a": 8, "fake-b": 5}  # fingerprint -> dim: two stores in one directory


def _own(rank: int) -> list[str]:
    return [f"writer {rank} text {i}" for i in range(60)]


def _expected(fingerprint: str, text: str) -> np.ndarray:
    return FakeEmbedder(EMBEDDERS[fingerprint], fingerprint).embed_texts([text])[0]


class _Miss(Exception):
    pass


class _ReadOnly(FakeEmbedder):
    """Refuses to embed, so a lookup through it either finds every key or stores nothing."""

    def embed_texts(
        self, texts: Sequence[str], batch_size: int = 256, progress: bool = False
    ) -> np.ndarray:
        raise _Miss


def _wrong(fingerprint: str, texts: list[str], vectors: np.ndarray) -> list[str]:
    """The texts whose returned row is not exactly their own vector."""
    return [
        text
        for text, vector in zip(texts, vectors, strict=True)
        if vector.dtype != np.float32 or not np.array_equal(vector, _expected(fingerprint, text))
    ]


def _plan(rank: int) -> list[tuple[str, list[str]]]:
    """Small lookups that, together, ask for every shared and own text under both embedders:
    1-3 new texts each, plus a random shared one (overlap) and a repeat within the call."""
    rng = random.Random(rank)
    plan = []
    for name in EMBEDDERS:
        order = rng.sample(SHARED + _own(rank), len(SHARED) + len(_own(rank)))
        while order:
            texts = [order.pop() for _ in range(min(len(order), rng.randint(1, 3)))]
            texts += [rng.choice(SHARED), rng.choice(texts)]
            rng.shuffle(texts)
            plan.append((name, texts))
    rng.shuffle(plan)
    return plan


def _writer(directory: str, rank: int, start: multiprocessing.Barrier, out) -> None:
    try:
        caches = {name: EmbeddingCache(directory) for name in EMBEDDERS}  # objects live on
        embedders = {name: FakeEmbedder(dim, name) for name, dim in EMBEDDERS.items()}
        wrong: list[str] = []
        start.wait()
        for round_, (name, texts) in enumerate(_plan(rank)):
            cache = caches[name] if round_ % 3 else EmbeddingCache(directory)  # also fresh ones
            try:
                wrong += _wrong(name, texts, cache.embed_texts(embedders[name], texts))
            except Exception as error:  # go on: the report shows every kind of failure
                wrong.append(f"{type(error).__name__}: {error}")
        out.put(("writer", rank, wrong))
    except BaseException:
        out.put(("writer", rank, traceback.format_exc()))


def _reader(directory: str, texts: list[str], start: multiprocessing.Barrier, out) -> None:
    """Look keys up until every one is found; report any key found with a wrong vector."""
    try:
        rng = random.Random(-1)
        readers = {name: _ReadOnly(dim, name) for name, dim in EMBEDDERS.items()}
        same = EmbeddingCache(directory)
        wrong: list[str] = []
        found = 0
        start.wait()
        deadline = time.monotonic() + 60
        for attempt in itertools.count():
            if time.monotonic() > deadline:
                break
            name = rng.choice(list(EMBEDDERS))
            batch = rng.sample(texts, rng.randint(1, 3))
            cache = same if rng.random() < 0.5 else EmbeddingCache(directory)
            try:
                wrong += _wrong(name, batch, cache.embed_texts(readers[name], batch))
                found += len(batch)
            except _Miss:
                pass
            if attempt % 20:
                continue
            try:  # done once every key is found
                every = {fp: same.embed_texts(readers[fp], texts) for fp in EMBEDDERS}
            except _Miss:
                continue
            for name, vectors in every.items():
                wrong += _wrong(name, texts, vectors)
            out.put(("reader", found, wrong))
            return
        out.put(("reader", found, "some keys were still missing after 60 s"))
    except BaseException:
        out.put(("reader", -1, traceback.format_exc()))


@pytest.mark.parametrize("writers", [2, 4])
def test_concurrent_writers_lose_and_mix_up_nothing(tmp_path: Path, writers: int) -> None:
    directory = str(tmp_path / "cache")
    universe = SHARED + [text for rank in range(writers) for text in _own(rank)]
    context = multiprocessing.get_context("spawn")
    start, out = context.Barrier(writers + 1), context.Queue()
    processes = [
        context.Process(target=_writer, args=(directory, rank, start, out))
        for rank in range(writers)
    ]
    processes.append(context.Process(target=_reader, args=(directory, universe, start, out)))
    for process in processes:
        process.start()
    try:
        reports = [out.get(timeout=120) for _ in processes]
    except queue.Empty:
        pytest.fail("a process neither finished nor failed within 120 s")
    finally:
        for process in processes:
            process.join(timeout=30)
    # Afterwards, in a new process's view: every key of every writer, each with its own vector.
    final = {}
    for name, dim in EMBEDDERS.items():
        try:
            vectors = EmbeddingCache(directory).embed_texts(_ReadOnly(dim, name), universe)
            final[name] = f"{len(_wrong(name, universe, vectors))} of {len(universe)} wrong"
        except Exception as error:
            final[name] = f"lost entries or unreadable: {type(error).__name__} {error}"
    problems = {
        f"{role} {who}": wrong[-600:] if isinstance(wrong, str) else f"{len(wrong)}: {wrong[:4]}"
        for role, who, wrong in reports
        if wrong
    }
    # Writers' and reader's problems: tracebacks, errors, or the keys they got bad vectors for.
    assert problems == {}, f"{problems}; at the end: {final}"
    assert final == {name: f"0 of {len(universe)} wrong" for name in EMBEDDERS}
    assert [process.exitcode for process in processes] == [0] * len(processes)
    with sqlite3.connect(Path(directory) / cache_module.DATABASE_NAME) as db:
        rows = dict(db.execute("SELECT fingerprint, rows FROM stores WHERE modality = 'text'"))
        stored = db.execute("SELECT COUNT(*) FROM keys").fetchone()[0]
    # Keys two writers embedded at once were stored once; lookups never store anything twice.
    assert rows == {name: len(universe) for name in EMBEDDERS} and stored == 2 * len(universe)


def _opener(directories: list[str], rank: int, start: multiprocessing.Barrier, out) -> None:
    try:
        embedder = FakeEmbedder(EMBEDDERS["fake-a"], "fake-a")
        for directory in directories:
            start.wait(timeout=20)  # all processes open each new cache at the same moment
            texts = [f"opener {rank}", "shared"]
            vectors = EmbeddingCache(directory).embed_texts(embedder, texts)
            assert _wrong("fake-a", texts, vectors) == [], directory
        out.put(("opener", rank, []))
    except BaseException:
        out.put(("opener", rank, traceback.format_exc()))


def test_processes_creating_one_cache_at_once(tmp_path: Path) -> None:
    # Switching a new database to WAL fails at once (no busy timeout) while another process
    # has it open: without a retry, one of the openers here died with "database is locked".
    openers, directories = 4, [str(tmp_path / f"cache{i}") for i in range(20)]
    context = multiprocessing.get_context("spawn")
    start, out = context.Barrier(openers), context.Queue()
    processes = [
        context.Process(target=_opener, args=(directories, rank, start, out))
        for rank in range(openers)
    ]
    for process in processes:
        process.start()
    try:
        reports = [out.get(timeout=120) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=30)
    assert {f"{role} {who}": wrong for role, who, wrong in reports if wrong} == {}
    for directory in directories:
        cache, texts = EmbeddingCache(directory), ["shared"] + [f"opener {r}" for r in range(4)]
        assert _wrong("fake-a", texts, cache.embed_texts(_ReadOnly(8, "fake-a"), texts)) == []

"""``FeedbackCache``: round trip, crash recovery (torn last line), malformed lines, no rewrites,
several processes appending at once.

The cache is what lets a killed feedback run resume, so these tests write the file the way a
crash would leave it (half a line, no newline) and check that the next run both loads what was
complete and leaves a file that later appends keep valid.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import queue
import random
import re
import subprocess
import sys
import time
import traceback
from pathlib import Path

import pytest

from drum.data.jsonl import DataError
from drum.feedback.cache import FeedbackCache, FeedbackKey, FeedbackRecord
from drum.lvlm.base import ScoreResult

MODEL = "llava-0123456789abcdef"


def _record(
    query: str, candidate: str | None, answer: str = "bok", total: float = -1.5
) -> FeedbackRecord:
    tokens = len(answer.split())
    # Values with long binary expansions: a lossy float round trip would show.
    return FeedbackRecord(
        (MODEL, query, candidate, answer), ScoreResult(total, total / tokens, tokens)
    )


RECORDS = [
    _record("q1", None, total=-2.0 / 3.0),  # zero-shot: candidate None, stored as JSON null
    _record("q1", "c1", total=-0.1234567890123),
    _record("q1", "None", total=-7.0),  # the *string* "None" is a different candidate
    _record("q2", "c1", answer="two words", total=-3.3),
    _record("q2", "c1", answer="ünïcödé", total=-0.5),  # same ids, other answer: other key
]


def _lines(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n"), "every complete record ends with a newline"
    return text.splitlines()


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "feedback.jsonl"  # parent created on first add
    cache = FeedbackCache(path)
    assert len(cache) == 0 and not path.exists()
    cache.add(RECORDS)
    assert len(cache) == len(RECORDS)

    reopened = FeedbackCache(path)
    assert len(reopened) == len(RECORDS)
    for record in RECORDS:
        assert record.key in reopened
        assert reopened.get(record.key) == record.score  # exact: floats survive JSON
    assert reopened.get((MODEL, "q1", "c2", "bok")) is None
    assert (MODEL, "q9", None, "bok") not in reopened
    assert (MODEL, "q1", None, "bok") in reopened and (MODEL, "q1", "None", "bok") in reopened
    assert reopened.get((MODEL, "q1", None, "bok")) != reopened.get((MODEL, "q1", "None", "bok"))
    # Keys include the model fingerprint: another model's scores are never reused.
    assert ("other-model", "q1", "c1", "bok") not in reopened
    assert [json.loads(line)["candidate"] for line in _lines(path)][:3] == [None, "c1", "None"]


def test_torn_last_line_is_dropped_and_cut(tmp_path: Path) -> None:
    path = tmp_path / "feedback.jsonl"
    FeedbackCache(path).add(RECORDS[:2])
    complete = path.read_bytes()
    torn = _record("q3", "c3")
    # A crash in the middle of an append: half a JSON line and no newline.
    with path.open("ab") as handle:
        handle.write(torn.to_json().encode("utf-8")[:25])

    cache = FeedbackCache(path)
    assert len(cache) == 2 and torn.key not in cache
    assert path.read_bytes() == complete, "the torn tail must be cut from the file"

    # Appends after recovery produce a valid file: nothing glued onto the torn fragment.
    cache.add([torn])
    assert len(_lines(path)) == 3
    reopened = FeedbackCache(path)
    assert len(reopened) == 3 and reopened.get(torn.key) == torn.score


def test_torn_line_that_is_the_whole_file(tmp_path: Path) -> None:
    # A crash during the very first append.
    path = tmp_path / "feedback.jsonl"
    path.write_bytes(RECORDS[0].to_json().encode("utf-8")[:10])
    cache = FeedbackCache(path)
    assert len(cache) == 0 and path.read_bytes() == b""
    cache.add(RECORDS[:1])
    assert FeedbackCache(path).get(RECORDS[0].key) == RECORDS[0].score


@pytest.mark.parametrize(
    "bad",
    [
        "{not json",
        json.dumps({"model": MODEL, "query": "q", "candidate": None, "answer": "a"}),  # no scores
        json.dumps(
            {
                "model": MODEL,
                "query": "q",
                "candidate": None,
                "answer": "a",
                "sum": "x",
                "mean": 1.0,
                "tokens": 1,
            }
        ),  # fmt: skip
        "[1, 2, 3]",
    ],
    ids=["not-json", "missing-fields", "bad-number", "not-an-object"],
)
def test_malformed_middle_line_names_file_and_line(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "feedback.jsonl"
    lines = [RECORDS[0].to_json(), RECORDS[1].to_json(), bad, RECORDS[2].to_json()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    before = path.read_bytes()
    with pytest.raises(DataError) as caught:
        FeedbackCache(path)
    assert f"{path}:3" in str(caught.value)
    assert caught.value.line == 3 and caught.value.path == path
    assert path.read_bytes() == before, "a corrupt cache is reported, never rewritten"


def test_malformed_last_complete_line_is_an_error_not_a_torn_line(tmp_path: Path) -> None:
    # Only a line without its newline can come from a torn append; a complete bad line is
    # corruption and must not be silently dropped.
    path = tmp_path / "feedback.jsonl"
    path.write_text(RECORDS[0].to_json() + "\n{oops\n", encoding="utf-8")
    with pytest.raises(DataError, match=re.escape(f"{path}:2")):
        FeedbackCache(path)


def test_blank_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "feedback.jsonl"
    path.write_text(f"{RECORDS[0].to_json()}\n\n{RECORDS[1].to_json()}\n{{bad\n", encoding="utf-8")
    with pytest.raises(
        DataError, match=re.escape(f"{path}:4")
    ):  # line numbers count the blank line
        FeedbackCache(path)


def test_adding_known_keys_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "feedback.jsonl"
    cache = FeedbackCache(path)
    cache.add(RECORDS[:3])
    before = path.read_bytes()

    cache.add(RECORDS[:3])
    cache.add([])
    assert path.read_bytes() == before
    # A known key with another score is not rewritten either: the first score stands.
    changed = FeedbackRecord(RECORDS[0].key, ScoreResult(0.0, 0.0, 1))
    cache.add([changed])
    assert path.read_bytes() == before and cache.get(RECORDS[0].key) == RECORDS[0].score

    # A fresh object on the same file knows the keys too.
    FeedbackCache(path).add(RECORDS[:3])
    assert path.read_bytes() == before

    # A mix appends only the new records.
    cache.add(RECORDS)
    keys: list[FeedbackKey] = []
    for line in _lines(path):
        row = json.loads(line)
        keys.append((row["model"], row["query"], row["candidate"], row["answer"]))
    assert keys == [record.key for record in RECORDS]


def test_append_after_another_writers_torn_line_stays_valid(tmp_path: Path) -> None:
    # A long-running writer loaded the file before another process was killed mid-append: its
    # next append must not glue its first record onto the torn fragment (a malformed line).
    path = tmp_path / "feedback.jsonl"
    writer = FeedbackCache(path)
    writer.add(RECORDS[:1])
    with path.open("ab") as handle:
        handle.write(RECORDS[4].to_json().encode("utf-8")[:20])  # the killed process's part
    writer.add(RECORDS[1:3])
    reopened = FeedbackCache(path)
    assert len(reopened) == 3 and RECORDS[4].key not in reopened
    assert len(_lines(path)) == 3


# A writer whose append takes two ``write`` calls with a pause between them (as a large
# append may: a partial write, a slow disk), telling the test when the first half is out.
_SLOW_APPEND = """
import os, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from tests.feedback.test_cache import RECORDS
import drum.feedback.cache

write = os.write
def slow_write(fd, data):
    half = len(data) // 2
    write(fd, data[:half])
    Path(sys.argv[2]).touch()
    time.sleep(0.5)
    return half + write(fd, data[half:])
drum.feedback.cache.os.write = slow_write
drum.feedback.cache.FeedbackCache(sys.argv[1]).add(RECORDS[2:])
"""


def test_opening_waits_for_an_append_in_flight(tmp_path: Path) -> None:
    path, half_out = tmp_path / "feedback.jsonl", tmp_path / "half-written"
    FeedbackCache(path).add(RECORDS[:2])
    root = str(Path(__file__).parents[2])
    writer = subprocess.Popen(
        [sys.executable, "-c", _SLOW_APPEND, str(path), str(half_out), root],
        env={**os.environ, "PYTHONPATH": root},
    )
    deadline = time.monotonic() + 30
    while not half_out.exists() and writer.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert half_out.exists(), "the writer never wrote its first half"
    # Half a line is in the file now. Opening must not take it for a crash's torn line.
    opened = FeedbackCache(path)
    assert writer.wait(timeout=30) == 0
    assert len(opened) == len(RECORDS)  # it waited for the append to finish
    reopened = FeedbackCache(path)
    assert [reopened.get(record.key) for record in RECORDS] == [r.score for r in RECORDS]
    assert len(_lines(path)) == len(RECORDS)


def _many_records(rank: int, n: int = 1500) -> list[FeedbackRecord]:
    rng = random.Random(rank)
    # Lines of ~100 to ~400 bytes: a chunk of 400 is ~100 KB, far over PIPE_BUF (4 KB).
    return [
        _record(f"q{rank}", f"c{i}", answer="word " * rng.randint(1, 60), total=-rng.random())
        for i in range(n)
    ]


def _appender(path: str, rank: int, start: multiprocessing.Barrier, out) -> None:
    try:
        rng, records = random.Random(rank), _many_records(rank)
        start.wait()
        while records:
            size = rng.choice([1, 2, 5, 20, 400])
            chunk, records = records[:size], records[size:]
            FeedbackCache(path).add(chunk)  # opens (may cut a torn tail), then appends
        out.put((rank, None))
    except BaseException:
        out.put((rank, traceback.format_exc()))


def test_concurrent_appenders_keep_every_record(tmp_path: Path) -> None:
    path, writers = tmp_path / "feedback.jsonl", 3
    context = multiprocessing.get_context("spawn")
    start, out = context.Barrier(writers), context.Queue()
    processes = [
        context.Process(target=_appender, args=(str(path), rank, start, out))
        for rank in range(writers)
    ]
    for process in processes:
        process.start()
    try:
        errors = dict(out.get(timeout=120) for _ in processes)
    except queue.Empty:
        pytest.fail("a writer neither finished nor failed within 120 s")
    finally:
        for process in processes:
            process.join(timeout=30)
    assert errors == dict.fromkeys(range(writers))

    cache = FeedbackCache(path)  # raises on any malformed line
    expected = [record for rank in range(writers) for record in _many_records(rank)]
    lost = [record.key[1:3] for record in expected if cache.get(record.key) != record.score]
    assert lost == [], f"{len(lost)} of {len(expected)} records lost, e.g. {lost[:3]}"
    assert len(_lines(path)) == len(expected) == len(cache)  # each exactly once

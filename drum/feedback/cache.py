"""An append-only, crash-safe cache of LVLM feedback scores.

One JSON object per line, keyed by ``(model fingerprint, query id, candidate id, answer)``
(``candidate = null`` for the zero-shot score ``log p(a | q)``; the scorer's model part also
names the prompt template when it is not the default, see ``cache_model_key``). Each batch of
new scores is appended and ``fsync``ed, so an interrupted scoring run loses at most the batch
in flight and a rerun scores only what is missing. A torn last line (a crash during the write)
is dropped on load; a malformed line anywhere else is an error naming file and line.

Several processes may append to one file at once. Each append (write + fsync) holds an
exclusive ``flock`` on the file and loading holds a shared one, so appends never interleave
(however large, over however many ``write`` calls) and a reader never sees one half done.
Without the lock a process opening the file while another's append was in flight would take
its unfinished last line for a crash's torn one and cut it, losing the records. A torn tail
seen under the lock can only be a killed writer's; it is cut under the exclusive lock, on load
and before each append (a long-running writer must not glue its first line onto it). Two
processes that score the same key at once may both append it; the first line wins on load.
Locks are advisory: every writer must be a ``FeedbackCache`` (on a local file system).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from drum.data.jsonl import DataError
from drum.lvlm.base import ScoreResult

FeedbackKey = tuple[str, str, str | None, str]  # (model, query id, candidate id | None, answer)


@dataclass(frozen=True)
class FeedbackRecord:
    key: FeedbackKey
    score: ScoreResult

    def to_json(self) -> str:
        model, query, candidate, answer = self.key
        return json.dumps(
            {
                "model": model,
                "query": query,
                "candidate": candidate,
                "answer": answer,
                "sum": self.score.sum,
                "mean": self.score.mean,
                "tokens": self.score.tokens,
            },
            ensure_ascii=False,
        )


class FeedbackCache:
    """Scores already computed, loaded from and appended to ``path`` (a ``.jsonl`` file)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._scores: dict[FeedbackKey, ScoreResult] = {}
        if self.path.is_file():
            self._load()

    def _load(self) -> None:
        with self.path.open("rb") as handle:
            fcntl.flock(handle, fcntl.LOCK_SH)  # no append is in flight while we read
            data = handle.read()
        lines = data.split(b"\n")
        # The last element is b"" when the file ends with a newline; anything else is a line
        # torn by a crash mid-append: drop it (and cut it from the file) so appends stay valid.
        torn = lines.pop()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                key = (str(row["model"]), str(row["query"]), row["candidate"], str(row["answer"]))
                score = ScoreResult(float(row["sum"]), float(row["mean"]), int(row["tokens"]))
            except (ValueError, KeyError, TypeError) as error:
                raise DataError(
                    self.path,
                    number,
                    f"malformed feedback record ({error}); expected a JSON object with "
                    "model, query, candidate, answer, sum, mean, tokens",
                ) from error
            self._scores.setdefault(key, score)  # a key two writers appended: the first wins
        if torn:
            with _locked_for_append(self.path) as fd:
                _cut_torn_tail(fd)

    def __len__(self) -> int:
        return len(self._scores)

    def __contains__(self, key: FeedbackKey) -> bool:
        return key in self._scores

    def get(self, key: FeedbackKey) -> ScoreResult | None:
        return self._scores.get(key)

    def items(self) -> list[tuple[FeedbackKey, ScoreResult]]:
        """Every ``(key, score)`` held, in the order the file first lists the keys."""
        return list(self._scores.items())

    def add(self, records: Iterable[FeedbackRecord]) -> None:
        """Append ``records`` durably (under the lock, then fsync) and remember them."""
        records = [r for r in records if r.key not in self._scores]
        if not records:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = "".join(record.to_json() + "\n" for record in records).encode("utf-8")
        with _locked_for_append(self.path) as fd:
            _cut_torn_tail(fd)
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        for record in records:
            self._scores[record.key] = record.score


@contextlib.contextmanager
def _locked_for_append(path: Path) -> Iterator[int]:
    """``path`` opened for appending (created if missing) under an exclusive ``flock``."""
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # releases the lock


def _cut_torn_tail(fd: int) -> None:
    """Cut what follows the last newline: under the lock, only a killed writer leaves that."""
    size = os.fstat(fd).st_size
    if size and os.pread(fd, 1, size - 1) != b"\n":
        os.ftruncate(fd, os.pread(fd, size, 0).rfind(b"\n") + 1)

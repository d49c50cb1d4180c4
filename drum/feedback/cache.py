"""An append-only, crash-safe cache of LVLM feedback scores.

One JSON object per line, keyed by ``(model fingerprint, query id, candidate id, answer)``
(``candidate = null`` for the zero-shot score ``log p(a | q)``; the scorer's model part also
names the prompt template when it is not the default, see ``cache_model_key``). Each batch of
new scores is appended with one ``write`` and ``fsync``ed, so an interrupted scoring run loses
at most the batch in flight and a rerun scores only what is missing. A torn last line (a crash
during the write) is dropped on load; a malformed line anywhere else is an error naming file
and line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
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
        data = self.path.read_bytes()
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
            self._scores[key] = score
        if torn:
            with self.path.open("r+b") as handle:
                handle.truncate(len(data) - len(torn))

    def __len__(self) -> int:
        return len(self._scores)

    def __contains__(self, key: FeedbackKey) -> bool:
        return key in self._scores

    def get(self, key: FeedbackKey) -> ScoreResult | None:
        return self._scores.get(key)

    def add(self, records: Iterable[FeedbackRecord]) -> None:
        """Append ``records`` durably (one write, then fsync) and remember them."""
        records = [r for r in records if r.key not in self._scores]
        if not records:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = "".join(record.to_json() + "\n" for record in records).encode("utf-8")
        with self.path.open("ab") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        for record in records:
            self._scores[record.key] = record.score

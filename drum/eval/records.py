"""Per-query records of the ICL evaluation: ``icl_queries.jsonl`` (``drum.eval.icl`` writes
them, ``drum.eval.query_report`` reads them; the fields are described in ``drum.eval.icl``).

Kept apart from ``drum.eval.icl`` so that reading them imports no model code.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from drum.utils.io import atomic_open

QUERIES_FILE = "icl_queries.jsonl"  # beside icl_results.json
QUERY_RECORD_FIELDS = (
    "task", "strategy", "shots", "seed", "query_id", "demo_ids", "similarity", "feedback",
    "prediction", "references", "scores", "score",
)  # fmt: skip


def write_query_records(path: str | os.PathLike[str], records: Sequence[dict[str, Any]]) -> None:
    """``records`` as JSON lines at ``path``, atomically."""
    with atomic_open(path, "w") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def read_query_records(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The per-query records at ``path``; ``ValueError`` naming file and line for a bad one."""
    return read_records(path, QUERY_RECORD_FIELDS)


def read_records(path: str | os.PathLike[str], required: Sequence[str]) -> list[dict[str, Any]]:
    """JSON objects, one a line (blank lines skipped), each with the ``required`` keys;
    ``ValueError`` naming file and line for a bad one."""
    path = Path(path)
    records = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not JSON ({error})") from error
            missing = [key for key in required if not isinstance(record, dict) or key not in record]
            if missing:
                raise ValueError(
                    f"{path}:{number}: a record needs {list(required)}; missing {missing}"
                )
            records.append(record)
    return records

"""``ResponseCache``: every response of a served model on disk, keyed by its request, so a
killed run resumes without asking the server again.

The key is the SHA-256 of the request's canonical JSON (sorted keys, no spaces) together with
the endpoint path: the body alone, which holds the model name, the messages (images as their
base64 data) and the sampling settings, never the API key (a header) nor the server's address
(a restarted server on another port, or a second replica, answers the same requests). One file
per response, ``<key[:2]>/<key>.json``, written atomically (``drum.utils.io``): any number of
threads and processes may share a directory, and a killed writer leaves no partial entry.
A model served under the same name but changed (other weights) needs another directory.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from drum.utils.io import atomic_write_json


def request_key(path: str, body: dict[str, Any]) -> str:
    """The cache key of POSTing ``body`` to ``path`` (``/chat/completions``)."""
    canonical = json.dumps({"path": path, "body": body}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ResponseCache:
    """JSON responses by request key in ``directory`` (created on first write).

    Example::

        cache = ResponseCache("runs/served")
        key = request_key("/chat/completions", body)
        response = cache.get(key) or cache.put(key, post(body))
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The response stored under ``key``, or None."""
        try:
            text = self._path(key).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        return json.loads(text)["response"]

    def put(self, key: str, response: dict[str, Any]) -> dict[str, Any]:
        """Store ``response`` under ``key``; returns it."""
        atomic_write_json(self._path(key), {"key": key, "response": response})
        return response

    def __len__(self) -> int:
        """How many responses are stored."""
        return sum(1 for _ in self.directory.glob("*/*.json")) if self.directory.is_dir() else 0

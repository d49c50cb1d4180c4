"""``ServedConfig``: where a served LVLM lives and how DRUM talks to it, and the one spelling
that names it on the command line, ``openai:<base_url>#<model>[?option=value&...]``.

``base_url`` is the server's OpenAI API root (``http://127.0.0.1:8000/v1`` for ``vllm serve``
and ``drum serve``; ``https://api.openai.com/v1`` for OpenAI), ``model`` the name the server
serves the model under. The options after ``?`` are the dataclass's other fields by name::

    openai:http://127.0.0.1:8000/v1#Qwen/Qwen2.5-VL-7B-Instruct?concurrency=16&timeout=300

The API key is never a field: ``api_key_env`` names the environment variable that holds it
(read when requests are sent, so no config, result or cache file can hold the key).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

SPEC_PREFIX = "openai:"


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/drum/served`` (``~/.cache/drum/served`` where it is unset)."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "drum" / "served"


@dataclass(frozen=True)
class ServedConfig:
    """An OpenAI-compatible chat-completions server and the client's settings.

    Args:
        base_url: the API root, ``http(s)://host[:port][/path]`` (``/chat/completions`` is
            appended); a trailing ``/`` is dropped.
        model: the served model's name (the request's ``model`` field).
        api_key_env: the environment variable holding the API key (sent as
            ``Authorization: Bearer ...`` when set and non-empty; a local server needs none).
        concurrency: requests in flight at once.
        timeout: seconds one request may take (connect, send, wait, read).
        retries: further tries of a request after a 429, a 5xx, a timeout or a connection
            error; then the call fails with ``ServedError``.
        backoff: seconds before the first retry, doubled for each next one (a server's
            ``Retry-After`` is honoured where it says longer), at most ``max_backoff``.
        max_backoff: the longest wait between two tries.
        cache_dir: where every response is kept, keyed by its request (``ResponseCache``);
            None keeps none.
    """

    base_url: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 8
    timeout: float = 120.0
    retries: int = 5
    backoff: float = 1.0
    max_backoff: float = 30.0
    cache_dir: Path | None = field(default_factory=default_cache_dir)

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        if not self.model:
            raise ValueError("model must name the served model, got ''")
        if not self.api_key_env:
            raise ValueError("api_key_env must name an environment variable, got ''")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")
        for name in ("timeout", "max_backoff"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.backoff < 0:
            raise ValueError(f"backoff must be >= 0, got {self.backoff}")
        if isinstance(self.cache_dir, str):
            object.__setattr__(self, "cache_dir", Path(self.cache_dir))

    @classmethod
    def from_spec(cls, spec: str) -> ServedConfig:
        """The config ``openai:<base_url>#<model>[?option=value&...]`` names (module
        docstring); ``cache_dir=none`` keeps no cache. A ``ValueError`` names what is wrong."""
        if not is_served_spec(spec):
            raise ValueError(
                f"a served model is written {SPEC_PREFIX}<base_url>#<model>, got {spec!r}"
            )
        base_url, hash_sign, rest = spec[len(SPEC_PREFIX) :].partition("#")
        model, _, query = rest.partition("?")
        if not hash_sign or not model:
            raise ValueError(
                f"{spec!r}: no model name; write {SPEC_PREFIX}<base_url>#<model> "
                f"(e.g. {SPEC_PREFIX}http://127.0.0.1:8000/v1#Qwen/Qwen2.5-VL-7B-Instruct)"
            )
        options: dict[str, Any] = {}
        known = {f.name: f for f in fields(cls) if f.name not in ("base_url", "model")}
        for name, value in parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)):
            if name not in known:
                raise ValueError(
                    f"{spec!r}: unknown option {name!r}; the options are {', '.join(known)}"
                )
            options[name] = _option_value(spec, name, value)
        return cls(base_url=base_url, model=model, **options)


def _option_value(spec: str, name: str, value: str) -> Any:
    try:
        if name in ("concurrency", "retries"):
            return int(value)
        if name in ("timeout", "backoff", "max_backoff"):
            return float(value)
    except ValueError:
        kind = "an integer" if name in ("concurrency", "retries") else "a number"
        raise ValueError(f"{spec!r}: option {name} must be {kind}, got {value!r}") from None
    if name == "cache_dir":
        return None if value.lower() == "none" else Path(value)
    return value


def is_served_spec(model: str | os.PathLike[str]) -> bool:
    """Whether ``model`` names a served model (``openai:...``) rather than a checkpoint."""
    return isinstance(model, str) and model.startswith(SPEC_PREFIX)

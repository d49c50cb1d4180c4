"""``serve_in_background``: a served app in this process, up inside the block, gone after it,
and a clear error where it cannot start."""

from __future__ import annotations

import socket
import threading
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from drum.serve.background import serve_in_background


def _app() -> Any:
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def _server_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("drum-serve-")]


def test_the_server_answers_inside_the_block_and_is_gone_after() -> None:
    with serve_in_background(_app()) as base_url:
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        root = base_url.removesuffix("/v1")
        assert httpx.get(root + "/health", timeout=5).json() == {"status": "ok"}
        assert len(_server_threads()) == 1
    assert _server_threads() == []
    with pytest.raises(httpx.TransportError):
        httpx.get(root + "/health", timeout=2)


def test_a_taken_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused = f"cannot listen on 127.0.0.1:{port}: Address already in use"
        with pytest.raises(RuntimeError, match=refused):
            with serve_in_background(_app(), port=port):
                pass
    assert _server_threads() == []

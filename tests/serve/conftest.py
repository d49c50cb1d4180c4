"""A real ``drum serve`` of the built-in LVLM for the served-model tests: started once per
session as a subprocess on 127.0.0.1 at a free port (API key required, at most two requests in
flight), and a helper that runs any ``create_app`` under uvicorn in a thread (an adapter, a
server without prompt log-probabilities). Every wait is bounded."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from drum.builtin.assets import ASSETS_DIR
from drum.serve.background import free_port, serve_in_background

BUILTIN_LVLM = ASSETS_DIR / "lvlm"
KEY_ENV = "DRUM_TEST_SERVE_KEY"
SECRET = "sk-drum-test-0b5e1c9f7a3d4e2b"
REPO = Path(__file__).resolve().parents[2]


@dataclass
class RunningServer:
    """A ``drum serve`` subprocess: its URL, log file and process."""

    base_url: str
    log: Path
    process: subprocess.Popen[bytes]

    def requests_logged(self, status: str = "") -> int:
        """POSTs to /v1/chat/completions in the access log (with ``status``, e.g. "429")."""
        lines = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return sum(1 for line in lines if "POST /v1/chat/completions" in line and status in line)


def start_server(log: Path, *args: str, key: str | None = None) -> RunningServer:
    """``drum serve --model <built-in LVLM> ...`` on a free loopback port, waited for (at most
    60 s, and only while the process lives)."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    if key is not None:
        env[KEY_ENV] = key
    command = [sys.executable, "-m", "drum.cli.main", "serve", "--model", str(BUILTIN_LVLM)]
    command += ["--served-model-name", "builtin", "--port", str(port), *args]
    handle = log.open("wb")
    process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
    handle.close()
    server = RunningServer(f"http://127.0.0.1:{port}/v1", log, process)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    process.wait(timeout=10)
    raise RuntimeError(f"drum serve did not start: {log.read_text(errors='replace')[-2000:]}")


def stop(server: RunningServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=10)


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The session's ``drum serve`` of the built-in LVLM, key ``SECRET`` required, at most two
    requests in flight (a third is answered 429)."""
    log = tmp_path_factory.mktemp("serve") / "server.log"
    server = start_server(
        log, "--max-concurrent-requests", "2", "--api-key-env", KEY_ENV, key=SECRET
    )
    previous = os.environ.get(KEY_ENV)
    os.environ[KEY_ENV] = SECRET  # what the clients of the tests read
    try:
        yield server
    finally:
        stop(server)
        if previous is None:
            os.environ.pop(KEY_ENV, None)
        else:
            os.environ[KEY_ENV] = previous


def thread_server(app: Any) -> AbstractContextManager[str]:
    """``app`` under uvicorn in a thread on a free loopback port; yields its base URL."""
    return serve_in_background(app)


@pytest.fixture(scope="session")
def builtin_lvlm() -> Any:
    """The built-in LVLM in this process (what served results are compared with)."""
    from drum.lvlm.hf import HFLVLM

    return HFLVLM(BUILTIN_LVLM)

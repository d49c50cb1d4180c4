"""``drum serve``'s app run in this process, in a background thread: for a notebook or a
script that wants a served model beside its own code, and for the tests and benchmarks that
talk to a real server without starting a subprocess.

Example::

    from drum.serve.app import create_app
    from drum.serve.background import serve_in_background
    from drum.serve.engine import ServeEngine

    with serve_in_background(create_app(ServeEngine(lvlm, "mine"))) as base_url:
        served = ServedLVLM.from_spec(f"openai:{base_url}#mine")
        served.score(prompts, answers)
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# How long a server may take to start, and to stop once asked (seconds).
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing on ``host`` listens on now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@contextmanager
def serve_in_background(
    app: Any, host: str = "127.0.0.1", port: int | None = None, log_level: str = "warning"
) -> Iterator[str]:
    """``app`` (``create_app``'s) under uvicorn in a daemon thread on ``host:port`` (default
    a port the OS picks); yields its OpenAI base URL (``http://host:port/v1``) once it accepts
    connections, and stops it when the block ends. The socket is bound here, before the
    thread starts, so a port already taken is a ``RuntimeError`` naming it, raised in the
    caller; a server that does not start within ``START_TIMEOUT`` seconds is one too."""
    import uvicorn

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # As uvicorn binds its own sockets: a port left in TIME_WAIT by a stopped server is free.
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, 0 if port is None else port))
    except OSError as error:
        listener.close()
        raise RuntimeError(f"drum serve cannot listen on {host}:{port}: {error.strerror}") from None
    port = int(listener.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [listener]}, name=f"drum-serve-{port}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        if not server.started:
            raise RuntimeError(f"drum serve did not start on {host}:{port}")
        yield f"http://{host}:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=STOP_TIMEOUT)
        listener.close()

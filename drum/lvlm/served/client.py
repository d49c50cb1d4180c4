"""``ChatClient``: POSTs to an OpenAI-compatible server, many in flight, each retried, each
response cached on disk.

Promises:

* at most ``config.concurrency`` requests in flight (a thread pool over one ``httpx.Client``);
* a 429, a 5xx, a timeout (``config.timeout`` per request) or a connection error is retried up
  to ``config.retries`` times after ``backoff * 2**i`` seconds (or the server's
  ``Retry-After``, whichever is longer; at most ``max_backoff``); after the last try,
  ``ServedError`` in one line: the URL, the tries, the last failure and that a rerun resumes.
  Any other 4xx is not retried: ``ServedError`` with the server's own message;
* every response is stored in the ``ResponseCache`` before it is returned, and a request
  found there is never sent: a killed run's rerun asks only what it had not been answered;
* the API key is read from ``os.environ[config.api_key_env]`` when a request is sent and goes
  into the ``Authorization`` header alone: never into a cache key, a cached file, a log line or
  an error message.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import Any

import httpx

from drum.lvlm.served.cache import ResponseCache, request_key
from drum.lvlm.served.config import ServedConfig

log = logging.getLogger(__name__)

CHAT_PATH = "/chat/completions"
# 408 Request Timeout and 409 (a server-side conflict some proxies answer) are transient too.
RETRIED_STATUSES = frozenset({408, 409, 429})


class ServedError(RuntimeError):
    """A served model's request that failed for good (one line, no API key)."""


class RequestRefused(ServedError):
    """The server answered a 4xx that retrying cannot change (its message is kept)."""

    def __init__(self, message: str, status: int, server_message: str) -> None:
        super().__init__(message)
        self.status = status
        self.server_message = server_message


def _retried(status: int) -> bool:
    return status in RETRIED_STATUSES or status >= 500


def _server_message(response: httpx.Response) -> str:
    """The error message an OpenAI-style error body carries (else the body's start)."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])[:300]
    if isinstance(body, dict) and body.get("message"):  # vLLM's older ErrorResponse
        return str(body["message"])[:300]
    return response.text[:300]


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(0.0, float(response.headers.get("retry-after", 0)))
    except ValueError:  # an HTTP date: fall back to our own backoff
        return 0.0


class ChatClient:
    """The transport under ``ServedLVLM`` (module docstring).

    Example::

        client = ChatClient(ServedConfig("http://127.0.0.1:8000/v1", "my-model"))
        [response] = client.post_many([{"model": "my-model", "messages": [...]}])
    """

    def __init__(self, config: ServedConfig) -> None:
        self.config = config
        self.cache = ResponseCache(config.cache_dir) if config.cache_dir is not None else None
        limits = httpx.Limits(max_connections=config.concurrency)
        self._http = httpx.Client(timeout=config.timeout, limits=limits)
        # Requests sent (tries, retries included) and answered from the cache: what a test or a
        # user can read to see that a rerun asked nothing twice.
        self.sent = 0
        self.cached = 0

    def close(self) -> None:
        self._http.close()

    def _headers(self) -> dict[str, str]:
        key = os.environ.get(self.config.api_key_env)
        return {"Authorization": f"Bearer {key}"} if key else {}

    def post(self, body: dict[str, Any], path: str = CHAT_PATH) -> dict[str, Any]:
        """The response to ``body`` (from the cache, else from the server, retried)."""
        key = request_key(path, body)
        if self.cache is not None and (stored := self.cache.get(key)) is not None:
            self.cached += 1
            return stored
        response = self._send(path, body)
        return self.cache.put(key, response) if self.cache is not None else response

    def _send(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        url = self.config.base_url + path
        tries = self.config.retries + 1
        last = ""
        for attempt in range(tries):
            wait_for = 0.0
            try:
                self.sent += 1
                response = self._http.post(url, json=body, headers=self._headers())
            except httpx.TimeoutException:
                last = f"no answer within {self.config.timeout:g} s (timeout)"
            except httpx.TransportError as error:  # refused, reset, closed mid-response
                last = f"connection error ({type(error).__name__}: {error})"
            else:
                if response.status_code == 200:
                    try:
                        return response.json()
                    except ValueError:
                        last = "a 200 whose body is not JSON"
                elif _retried(response.status_code):
                    last = f"HTTP {response.status_code}: {_server_message(response)}"
                    wait_for = _retry_after(response)
                else:
                    message = _server_message(response)
                    raise RequestRefused(
                        f"POST {url}: HTTP {response.status_code}: {message}",
                        response.status_code,
                        message,
                    )
            if attempt + 1 < tries:
                delay = min(
                    self.config.max_backoff, max(wait_for, self.config.backoff * 2**attempt)
                )
                log.warning("POST %s: %s; retry %d of %d in %.2f s", url, last, attempt + 1,
                            tries - 1, delay)  # fmt: skip
                time.sleep(delay)
        where = ""
        if self.cache is not None:
            where = f" (responses so far are cached in {self.cache.directory}: a rerun resumes)"
        raise ServedError(f"POST {url}: gave up after {tries} tries: {last}{where}")

    def post_many(
        self,
        bodies: Sequence[dict[str, Any]],
        path: str = CHAT_PATH,
        done: Callable[[], None] | None = None,
    ) -> list[dict[str, Any]]:
        """The responses to ``bodies``, in order, ``config.concurrency`` in flight; ``done``
        is called after each answered one. On the first failure the requests not yet started are
        cancelled, those in flight finish (their responses cached), and the error is raised."""
        if not bodies:
            return []
        with ThreadPoolExecutor(max_workers=min(self.config.concurrency, len(bodies))) as pool:
            futures: list[Future[dict[str, Any]]] = []
            for body in bodies:
                future = pool.submit(self.post, body, path)
                if done is not None:
                    future.add_done_callback(
                        lambda f: None if f.cancelled() or f.exception() else done()
                    )
                futures.append(future)
            finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = next((f for f in futures if f in finished and f.exception()), None)
            if failed is not None:
                for future in futures:
                    future.cancel()
                raise failed.exception()  # type: ignore[misc]
        return [future.result() for future in futures]

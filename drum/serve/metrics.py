"""``GET /metrics`` of ``drum serve``: its counters in the Prometheus text format
(``prometheus_client``), read from the engine at each scrape, so a running server's batching
and load can be watched (as vLLM's ``/metrics`` is).

Exposed (``drum_serve_`` prefix): ``requests_total`` (requests the model answered, a response
or an error), ``batches_total``, ``model_passes_total`` (scoring forwards and ``generate``
calls), ``busy_seconds_total`` (wall-clock time running batches), ``largest_batch``,
``queued_requests`` (waiting for a batch now), ``requests_in_flight`` (in the server now,
queued or running), and ``responses_total{code}`` (chat-completions responses by HTTP status:
``429`` counts the requests turned away). Like ``/health`` it needs no API key: it holds counts
only, nothing a request carried.

Example::

    curl -s http://127.0.0.1:8000/metrics | grep drum_serve_batches_total
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from drum.serve.engine import ServeEngine

CONTENT_TYPE = CONTENT_TYPE_LATEST


class ServeMetrics:
    """The metrics of one app: ``engine``'s counters, ``in_flight()`` and the responses
    ``count`` was told of, in a registry of their own (two apps in one process never share)."""

    def __init__(self, engine: ServeEngine, in_flight: Callable[[], int]) -> None:
        self.engine = engine
        self.in_flight = in_flight
        self._responses: Counter[int] = Counter()
        self._lock = threading.Lock()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def count(self, status: int) -> None:
        """One chat-completions response with HTTP ``status``."""
        with self._lock:
            self._responses[status] += 1

    def collect(self) -> Iterator[Metric]:
        engine = self.engine
        yield CounterMetricFamily(
            "drum_serve_requests", "Requests the model answered (a response or an error).",
            value=engine.requests,
        )  # fmt: skip
        yield CounterMetricFamily("drum_serve_batches", "Batches run.", value=engine.batches)
        yield CounterMetricFamily(
            "drum_serve_model_passes", "Model passes run: scoring forwards and generate calls.",
            value=engine.passes,
        )  # fmt: skip
        yield CounterMetricFamily(
            "drum_serve_busy_seconds", "Wall-clock seconds spent running batches.",
            value=engine.busy_seconds,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "drum_serve_largest_batch", "The most requests one batch answered.",
            value=engine.largest_batch,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "drum_serve_queued_requests", "Requests waiting for a batch now.", value=engine.queued
        )
        yield GaugeMetricFamily(
            "drum_serve_requests_in_flight", "Chat-completions requests in the server now.",
            value=self.in_flight(),
        )  # fmt: skip
        responses = CounterMetricFamily(
            "drum_serve_responses", "Chat-completions responses by HTTP status.", labels=["code"]
        )
        with self._lock:
            counted = sorted(self._responses.items())
        for status, number in counted:
            responses.add_metric([str(status)], number)
        yield responses

    def render(self) -> bytes:
        """The text a scrape gets."""
        return generate_latest(self.registry)

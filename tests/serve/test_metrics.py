"""``GET /metrics``: the engine's counters and the responses by status, in the Prometheus text
format (parsed back with ``prometheus_client``'s own parser), readable without the API key."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from drum.data import read_examples
from drum.lvlm.prompt import build_prompt
from drum.lvlm.served.requests import scored_body
from drum.serve.app import create_app
from drum.serve.batching import BatchingConfig
from drum.serve.engine import ServeEngine
from tests.serve.conftest import thread_server

KEY = "sk-metrics-test"


def scrape(base_url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics`` (no key sent), by name and labels."""
    response = httpx.get(base_url.removesuffix("/v1") + "/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_metrics_count_what_the_server_did(builtin_lvlm: Any, tiny_world: Path) -> None:
    pool = read_examples(tiny_world / "vqa" / "pool.jsonl")
    bodies = [
        scored_body("builtin", build_prompt(pool[i + 20 : i + 21], pool[i]), pool[i].answer)
        for i in range(5)
    ]
    bodies.append(scored_body("builtin", build_prompt(pool[10:60], pool[9]), "red"))  # too long
    engine = ServeEngine(builtin_lvlm, "builtin", BatchingConfig(8, 100.0))
    with thread_server(create_app(engine, max_concurrent_requests=8, api_key=KEY)) as base_url:
        before = scrape(base_url)
        url = base_url + "/chat/completions"
        headers = {"Authorization": f"Bearer {KEY}"}
        with ThreadPoolExecutor(len(bodies)) as workers:
            statuses = list(
                workers.map(
                    lambda b: httpx.post(url, json=b, headers=headers, timeout=60).status_code,
                    bodies,
                )
            )
        assert httpx.post(url, json=bodies[0], timeout=60).status_code == 401  # no key
        after = scrape(base_url)
    assert statuses == [200] * 5 + [400]
    assert before[("drum_serve_requests_total", ())] == 0
    assert not [name for name, _ in before if name == "drum_serve_responses_total"]
    assert after[("drum_serve_requests_total", ())] == engine.requests == 6  # not the 401
    assert after[("drum_serve_batches_total", ())] == engine.batches < 6  # gathered
    assert after[("drum_serve_model_passes_total", ())] == engine.passes
    assert after[("drum_serve_largest_batch", ())] == engine.largest_batch > 1
    assert after[("drum_serve_busy_seconds_total", ())] > 0
    assert after[("drum_serve_queued_requests", ())] == 0
    assert after[("drum_serve_requests_in_flight", ())] == 0
    by_code = {
        dict(labels)["code"]: value
        for (name, labels), value in after.items()
        if name == "drum_serve_responses_total"
    }
    assert by_code == {"200": 5, "400": 1, "401": 1}


def test_two_apps_in_one_process_count_apart(builtin_lvlm: Any) -> None:
    first = create_app(ServeEngine(builtin_lvlm, "a"))
    second = create_app(ServeEngine(builtin_lvlm, "b"))
    first.state.metrics.count(200)
    assert b'drum_serve_responses_total{code="200"} 1.0' in first.state.metrics.render()
    assert b"drum_serve_responses_total{" not in second.state.metrics.render()

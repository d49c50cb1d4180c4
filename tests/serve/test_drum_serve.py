"""``ServedLVLM`` against a real ``drum serve`` of the built-in LVLM (``tests/serve/conftest``):
served scores and greedy replies equal the in-process model's for prompts of 1 to 3
interleaved images; a ``drum eval`` through the server equals the in-process run row for row;
a 429 is retried; a killed server is retried, then a clear error, and the rerun against a new
server asks only what the cache lacks; the API key is sent and never written anywhere; a VPG-C
adapter is served as in-process; bad requests are clear 400s; a server without prompt
log-probabilities fails ``score`` up front while generation works."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from drum.data import read_examples
from drum.lvlm.prompt import ICLPrompt, build_prompt
from drum.lvlm.served import ServedConfig, ServedError, ServedLVLM
from drum.lvlm.served.client import RequestRefused
from drum.lvlm.served.model import ScoreUnavailable
from drum.lvlm.served.requests import chat_messages
from tests.lvlm.prompts import interleaved_prompts
from tests.serve.conftest import KEY_ENV, SECRET, RunningServer, start_server, stop, thread_server

# Each test needs a served model: the session's drum serve (a subprocess, ~10 s to start with
# the in-process model beside it) or one under uvicorn in a thread.
pytestmark = pytest.mark.slow


def pool_of(world: Path) -> list[Any]:
    return read_examples(world / "vqa" / "pool.jsonl")


def scored_prompts(world: Path) -> tuple[list[ICLPrompt], list[str]]:
    """One image (zero-shot), two across a demo and the query, and the interleaved 2- and
    3-image prompts; answers of 1 to 3 tokens."""
    pool = pool_of(world)
    prompts = [build_prompt([], pool[3]), build_prompt(pool[1:2], pool[0])]
    answers = [pool[3].answer, "red blue green"]
    more, more_answers = interleaved_prompts(pool)
    return prompts + more, answers + more_answers


def client(base_url: str, cache: Path | None = None, **options: Any) -> ServedLVLM:
    config = ServedConfig(
        base_url, "builtin", api_key_env=KEY_ENV, cache_dir=cache, backoff=0.05,
        max_backoff=0.2, **{"concurrency": 2, **options},
    )  # fmt: skip
    return ServedLVLM(config)


def test_served_scores_and_replies_equal_the_in_process_model(
    served: RunningServer, builtin_lvlm: Any, tiny_world: Path
) -> None:
    prompts, answers = scored_prompts(tiny_world)
    assert sorted({len(p.images) for p in prompts}) == [1, 2, 3]
    lvlm = client(served.base_url)
    expected = builtin_lvlm.score(prompts, answers)
    got = lvlm.score(prompts, answers)
    assert [r.tokens for r in got] == [r.tokens for r in expected]
    for mine, theirs in zip(got, expected, strict=True):
        assert mine.sum == pytest.approx(theirs.sum, abs=1e-4)
        assert mine.mean == pytest.approx(theirs.mean, abs=1e-4)
    # An answer the model finds likelier scores higher through the server too (not a constant).
    assert len({round(r.mean, 3) for r in got}) > 1
    assert lvlm.generate(prompts, max_new_tokens=6) == builtin_lvlm.generate(prompts, 6)


def test_feedback_through_the_server_equals_the_in_process_feedback(
    served: RunningServer, builtin_lvlm: Any, tiny_world: Path
) -> None:
    from drum.feedback.scorer import FeedbackConfig, score_feedback

    pool = pool_of(tiny_world)
    queries = pool[:3]
    candidates = {query.id: pool[10:14] for query in queries}
    config = FeedbackConfig(candidates=4)
    served_lvlm = client(served.base_url)
    got = score_feedback(served_lvlm, queries, candidates, config=config, progress=False)
    expected = score_feedback(builtin_lvlm, queries, candidates, config=config, progress=False)
    for mine, theirs in zip(got, expected, strict=True):
        assert mine.candidate_ids == theirs.candidate_ids
        assert mine.scores == pytest.approx(theirs.scores, abs=1e-4)
        assert mine.zero_shot == pytest.approx(theirs.zero_shot, abs=1e-4)
    assert len({round(s, 3) for f in got for s in f.scores}) > 1


def test_prompt_logprobs_have_vllms_shape(served: RunningServer, tiny_world: Path) -> None:
    prompts, answers = scored_prompts(tiny_world)
    messages = chat_messages(prompts[1]) + [{"role": "assistant", "content": answers[1]}]
    body = {"model": "builtin", "messages": messages, "max_tokens": 1, "prompt_logprobs": 3,
            "continue_final_message": True, "add_generation_prompt": False,
            "return_token_ids": True}  # fmt: skip
    headers = {"Authorization": f"Bearer {SECRET}"}
    response = httpx.post(served.base_url + "/chat/completions", json=body, headers=headers)
    assert response.status_code == 200, response.text
    data = response.json()
    ids, logprobs = data["prompt_token_ids"], data["prompt_logprobs"]
    assert len(ids) == len(logprobs) == data["usage"]["prompt_tokens"]
    answer = [entry for entry in logprobs if entry is not None]
    assert len(answer) == 3 and logprobs[0] is None  # "red blue green": three tokens
    for position, entry in enumerate(answer, start=len(ids) - 3):
        own = entry[str(ids[position])]
        top = sorted(entry.values(), key=lambda e: e["rank"])
        assert top[0]["rank"] == 1 and own["logprob"] <= top[0]["logprob"]
        assert {"logprob", "rank", "decoded_token"} <= set(own)


def test_the_key_is_required_and_a_refusal_is_not_retried(
    served: RunningServer, monkeypatch: pytest.MonkeyPatch, tiny_world: Path
) -> None:
    monkeypatch.delenv(KEY_ENV)
    lvlm = client(served.base_url, retries=3)
    with pytest.raises(RequestRefused, match="HTTP 401: a valid API key is required"):
        lvlm.generate(scored_prompts(tiny_world)[0][:1])
    assert lvlm.client.sent == 1


def test_a_429_is_retried(served: RunningServer, builtin_lvlm: Any, tiny_world: Path) -> None:
    pool = pool_of(tiny_world)
    prompts = [build_prompt(pool[i + 20 : i + 21], pool[i]) for i in range(12)]
    before = served.requests_logged("429")
    lvlm = client(served.base_url, concurrency=8, retries=20)
    assert lvlm.generate(prompts, 4) == builtin_lvlm.generate(prompts, 4)
    assert served.requests_logged("429") > before  # the server (2 at once) refused some
    assert lvlm.client.sent > len(prompts)


def test_bad_requests_are_clear_400s(served: RunningServer, tiny_world: Path) -> None:
    [prompt] = scored_prompts(tiny_world)[0][:1]
    messages = chat_messages(prompt)
    image = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    cases = {
        "no system message": {"messages": [{"role": "system", "content": "x"}, *messages]},
        "fetches nothing": {"messages": [{"role": "user", "content": [image]}]},
        "does not decode": {"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,%%%"}}]}]},
        "greedily": {"messages": messages, "temperature": 0.7},
        "open final assistant message": {"messages": messages, "prompt_logprobs": 0},
        "cannot both be true": {"messages": messages, "continue_final_message": True},
    }  # fmt: skip
    headers = {"Authorization": f"Bearer {SECRET}"}
    url = served.base_url + "/chat/completions"
    for expected, body in cases.items():
        response = httpx.post(url, json={"model": "builtin", **body}, headers=headers)
        assert response.status_code == 400, (expected, response.text)
        assert expected in response.json()["error"]["message"]
    other = httpx.post(url, json={"model": "gpt-4o", "messages": messages}, headers=headers)
    assert other.status_code == 404 and "`gpt-4o` does not exist" in other.text
    broken = httpx.post(url, content=b"{", headers=headers)
    assert broken.status_code == 400 and "not JSON" in broken.text
    models = httpx.get(served.base_url + "/models", headers=headers).json()
    assert [model["id"] for model in models["data"]] == ["builtin"]


def test_drum_eval_through_the_server_equals_the_in_process_run(
    served: RunningServer, tiny_world: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from typer.testing import CliRunner

    from drum.builtin.assets import ASSETS_DIR
    from drum.cli.main import app

    cache = tmp_path / "cache"
    spec = f"openai:{served.base_url}#builtin?api_key_env={KEY_ENV}&concurrency=2&cache_dir={cache}"
    args = ["eval", "--world", str(tiny_world), "--task", "vqa", "--strategy", "random"]
    args += ["--shots", "0,2", "--seeds", "0", "--max-queries", "4"]
    runs = {}
    for name, model in (("local", str(ASSETS_DIR / "lvlm")), ("served", spec)):
        result = CliRunner().invoke(app, [*args, "--model", model, "--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        runs[name] = tmp_path / name
    # The server knows nothing of context counts: the served rows say None, not 0.
    skip = {"seconds", "truncated_prompts", "dropped_demos"}

    def rows(run: Path) -> list[dict[str, Any]]:
        results = json.loads((run / "icl_results.json").read_text())["rows"]
        return [{k: v for k, v in row.items() if k not in skip} for row in results]

    assert rows(runs["served"]) == rows(runs["local"])
    queries = {name: (run / "icl_queries.jsonl").read_text() for name, run in runs.items()}
    assert queries["served"] == queries["local"] and queries["local"]
    assert len(list(cache.glob("*/*.json"))) == 8  # 4 zero-shot + 4 two-shot replies
    # The key went to the server (it requires one) and into no file and no log line.
    written = [p for p in (*tmp_path.rglob("*"), served.log) if p.is_file()]
    assert not [p for p in written if SECRET.encode() in p.read_bytes()]
    assert SECRET not in caplog.text


def test_a_killed_server_is_retried_then_a_clear_error_and_the_rerun_resumes(
    served: RunningServer, builtin_lvlm: Any, tiny_world: Path, tmp_path: Path
) -> None:
    pool = pool_of(tiny_world)
    prompts = [build_prompt(pool[i + 1 : i + 3], pool[i]) for i in range(40)]
    cache = tmp_path / "cache"
    doomed = start_server(tmp_path / "doomed.log")
    failure: list[BaseException] = []

    def run() -> None:
        try:
            client(doomed.base_url, cache, concurrency=1, retries=2).generate(prompts, 4)
        except BaseException as error:  # the failure the main thread checks
            failure.append(error)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(cache.glob("*/*.json"))) < 4:
        time.sleep(0.005)
    doomed.process.kill()  # mid-run: SIGKILL, no goodbye
    doomed.process.wait(timeout=10)
    worker.join(timeout=60)
    stop(doomed)
    assert not worker.is_alive()
    [error] = failure
    assert isinstance(error, ServedError)
    assert "gave up after 3 tries" in str(error) and "a rerun resumes" in str(error)
    assert "connection error" in str(error)
    answered = len(list(cache.glob("*/*.json")))
    assert 4 <= answered < len(prompts)

    before = served.requests_logged()
    rerun = client(served.base_url, cache)  # a new server, elsewhere: the cache still answers
    assert rerun.generate(prompts, 4) == builtin_lvlm.generate(prompts, 4)
    assert rerun.client.cached == answered
    assert served.requests_logged() - before == len(prompts) - answered


def test_a_vpgc_adapter_is_served_as_in_process(builtin_lvlm: Any, tiny_world: Path) -> None:
    import torch

    from drum.adapters.vpgc import VPGCLVLM, VPGCConfig
    from drum.serve.app import create_app
    from drum.serve.batching import BatchingConfig
    from drum.serve.engine import ServeEngine

    adapted = VPGCLVLM(builtin_lvlm, VPGCConfig(num_heads=1, hidden_size=8))
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in adapted.trainable_parameters():
            parameter.normal_(0, 0.5)  # not the zero init: the adapter changes the model
    prompts, answers = scored_prompts(tiny_world)
    expected = adapted.score(prompts, answers)
    plain = builtin_lvlm.score(prompts, answers)
    assert any(abs(a.sum - b.sum) > 1e-3 for a, b in zip(expected, plain, strict=True))
    engine = ServeEngine(adapted, "builtin", BatchingConfig(batch_wait_ms=50.0))
    with thread_server(create_app(engine)) as base_url:
        config = ServedConfig(base_url, "builtin", cache_dir=None, concurrency=8)
        got = ServedLVLM(config).score(prompts, answers)
    for mine, theirs in zip(got, expected, strict=True):
        assert mine.sum == pytest.approx(theirs.sum, abs=1e-4)
    assert engine.largest_batch > 1  # the adapter acts on batched passes too


def test_score_fails_up_front_where_the_server_has_no_prompt_logprobs(
    builtin_lvlm: Any, tiny_world: Path
) -> None:
    from drum.serve.app import create_app
    from drum.serve.engine import ServeEngine

    prompts, answers = scored_prompts(tiny_world)
    app = create_app(ServeEngine(builtin_lvlm, "builtin"), prompt_logprobs=False)
    with thread_server(app) as base_url:
        lvlm = ServedLVLM(ServedConfig(base_url, "builtin", cache_dir=None))
        with pytest.raises(ScoreUnavailable, match="return_token_ids.*score needs the prompt"):
            lvlm.score(prompts, answers)
        assert lvlm.client.sent == 1  # the first request alone, nothing more
        assert lvlm.generate(prompts, 6) == builtin_lvlm.generate(prompts, 6)


def test_requests_sharing_a_demonstration_go_together(
    served: RunningServer, builtin_lvlm: Any, tiny_world: Path
) -> None:
    from drum.lvlm.served.requests import prefix_body

    pool = pool_of(tiny_world)
    # Query-major, as a caller other than score_feedback might list them.
    prompts = [
        build_prompt(demos, query)
        for query in pool[:3]
        for demos in ([pool[10]], [pool[11]], [], pool[12:14])
    ]
    answers = [query.answer for query in pool[:3] for _ in range(4)]
    lvlm = client(served.base_url)
    sent: list[dict] = []
    post_many = lvlm.client.post_many

    def recording(bodies: Any, *args: Any, **kwargs: Any) -> list[dict]:
        sent.extend(bodies)
        return post_many(bodies, *args, **kwargs)

    lvlm.client.post_many = recording  # type: ignore[method-assign]
    got = lvlm.score(prompts, answers)
    # Which prompt each request asks about (the first prompt's pair goes out alone, first).
    messages = [prefix_body("builtin", p)["messages"] for p in prompts]
    asked = [next(i for i, m in enumerate(messages) if m == b["messages"][: len(m)]) for b in sent]
    assert asked[0::2] == asked[1::2]  # each prompt's two requests one after the other
    demos = [prompts[i].demos for i in asked[0::2]]
    runs = [d for k, d in enumerate(demos) if k == 0 or demos[k - 1] != d]
    assert len(runs) == len(set(demos)) == 4  # every demonstration set in one run
    assert runs[-1] == ()  # zero-shot prompts last
    expected = builtin_lvlm.score(prompts, answers)
    for mine, theirs in zip(got, expected, strict=True):  # results in the prompts' order
        assert mine.sum == pytest.approx(theirs.sum, abs=1e-4)

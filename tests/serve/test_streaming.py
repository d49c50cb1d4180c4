"""``stream: true`` on ``drum serve``: the OpenAI SDK's own streaming client reads a served
reply, chunk by chunk, as the non-streamed reply; the events' layout as OpenAI's; scoring is
not streamed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from drum.data import read_examples
from drum.lvlm.prompt import ICLPrompt, build_prompt
from drum.lvlm.served.requests import generate_body, scored_body
from drum.serve.app import create_app
from drum.serve.engine import ServeEngine
from drum.serve.streaming import DONE, completion_events
from tests.serve.conftest import thread_server


def _completion(text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 7,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }


def _payloads(events: list[str]) -> list[dict[str, Any]]:
    assert events[-1] == DONE
    assert all(e.startswith("data: ") and e.endswith("\n\n") for e in events)
    return [json.loads(e.removeprefix("data: ")) for e in events[:-1]]


@pytest.mark.parametrize("include_usage", [False, True])
def test_events_carry_the_reply_as_openai_lays_a_stream_out(include_usage: bool) -> None:
    chunks = _payloads(completion_events(_completion("red cube"), include_usage))
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert {(c["id"], c["created"], c["model"]) for c in chunks} == {("chatcmpl-1", 7, "m")}
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert "".join(d.get("content", "") for d in deltas) == "red cube"
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes == [None, None, "stop"]
    if include_usage:
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 7
        assert all(c["usage"] is None for c in chunks[:-1])
    else:
        assert all("usage" not in c for c in chunks)


def test_an_empty_reply_has_no_content_chunk() -> None:
    chunks = _payloads(completion_events(_completion(""), False))
    assert [c["choices"][0]["delta"] for c in chunks] == [{"role": "assistant", "content": ""}, {}]


@pytest.fixture(scope="module")
def base_url(builtin_lvlm: Any) -> Iterator[str]:
    with thread_server(create_app(ServeEngine(builtin_lvlm, "builtin"))) as url:
        yield url


def _prompts(world: Path) -> list[ICLPrompt]:
    pool = read_examples(world / "vqa" / "pool.jsonl")
    return [build_prompt(pool[i + 1 : i + 3], pool[i]) for i in range(3)]


def test_the_openai_sdk_streams_the_reply_the_server_gives_whole(
    base_url: str, tiny_world: Path
) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=base_url, api_key="unused", max_retries=0)
    for prompt in _prompts(tiny_world):
        body = generate_body("builtin", prompt, 6)
        whole = client.chat.completions.create(**body)
        stream = client.chat.completions.create(
            **body, stream=True, stream_options={"include_usage": True}
        )
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == whole.choices[0].message.content
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
        assert chunks[-1].usage is not None
        assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens


def test_scoring_is_not_streamed_and_stream_options_need_stream(
    base_url: str, tiny_world: Path
) -> None:
    prompt = _prompts(tiny_world)[0]
    url = base_url + "/chat/completions"
    scored = httpx.post(url, json={**scored_body("builtin", prompt, "red"), "stream": True})
    assert scored.status_code == 400
    assert "streams generated replies only" in scored.json()["error"]["message"]
    options = {**generate_body("builtin", prompt, 4), "stream_options": {"include_usage": True}}
    refused = httpx.post(url, json=options)
    assert refused.status_code == 400 and "stream_options" in refused.json()["error"]["message"]

"""What a served LVLM sends (messages in prompt order, images as their files' bytes) and how it
reads an answer's log-probability from vLLM-shaped responses (``prompt_logprobs`` keyed by
token id, ``prompt_token_ids``, ``usage.prompt_tokens``)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from drum.lvlm.prompt import ICLPrompt, ImagePart, TextPart, Turn
from drum.lvlm.served.cache import ResponseCache, request_key
from drum.lvlm.served.requests import (
    ResponseError,
    answer_score,
    chat_messages,
    scored_body,
)


def entry(token: int, logprob: float) -> dict[str, Any]:
    return {str(token): {"logprob": logprob, "rank": 1, "decoded_token": "x"}}


def responses(
    prefix_ids: list[int], ids: list[int], logprobs: list[float]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Request 1's and request 2's responses as vLLM shapes them."""
    prefix = {"usage": {"prompt_tokens": len(prefix_ids)}, "prompt_token_ids": prefix_ids}
    scored = {
        "prompt_logprobs": [None]
        + [entry(t, lp) for t, lp in zip(ids[1:], logprobs[1:], strict=True)],
        "prompt_token_ids": ids,
    }
    return prefix, scored


def test_the_answer_is_every_token_after_the_prompt() -> None:
    prefix, scored = responses([1, 5, 6], [1, 5, 6, 9, 4], [0, -1.0, -2.0, -0.5, -0.25])
    result = answer_score(prefix, scored)
    assert (result.sum, result.mean, result.tokens) == (-0.75, -0.375, 2)
    # prompt_logprobs=0 without token ids: each position's one entry is the prompt token's.
    del scored["prompt_token_ids"], prefix["prompt_token_ids"]
    assert answer_score(prefix, scored).sum == -0.75


def test_responses_that_cannot_give_the_answer_score_say_why() -> None:
    prefix, scored = responses([1, 5, 6], [1, 5, 7, 9], [0, -1.0, -2.0, -0.5])
    with pytest.raises(ResponseError, match="renders an answer turn unlike a generation prompt"):
        answer_score(prefix, scored)
    prefix, scored = responses([1, 5, 6], [1, 5, 6], [0, -1.0, -2.0])
    with pytest.raises(ResponseError, match="the answer adds no token"):
        answer_score(prefix, scored)
    prefix, scored = responses([1], [1, 5], [0, -1.0])
    with pytest.raises(ResponseError, match="no prompt_logprobs"):
        answer_score(prefix, {})
    scored["prompt_logprobs"][1] = {**entry(5, -1.0), **entry(8, -0.1)}
    del scored["prompt_token_ids"]
    with pytest.raises(ResponseError, match=r"prompt_logprobs\[1\] has no entry"):
        answer_score(prefix, scored)


def test_messages_keep_the_prompt_order_and_the_image_bytes(image_paths: list[Path]) -> None:
    prompt = ICLPrompt(
        (Turn((ImagePart(image_paths[0]), TextPart("what colour?")), "red"),),
        Turn((TextPart("one"), ImagePart(image_paths[1]), TextPart("two"))),
    )
    messages = chat_messages(prompt)
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"] == "red"
    kinds = [part["type"] for part in messages[2]["content"]]
    assert kinds == ["text", "image_url", "text"]
    url = messages[2]["content"][1]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.partition(",")[2]) == image_paths[1].read_bytes()
    body = scored_body("m", prompt, "blue")
    assert body["messages"][-1] == {"role": "assistant", "content": "blue"}
    assert body["continue_final_message"] and not body["add_generation_prompt"]


def test_the_cache_keys_on_the_request_alone(tmp_path: Path) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    key = request_key("/chat/completions", body)
    assert key == request_key("/chat/completions", dict(reversed(body.items())))
    assert key != request_key("/chat/completions", {**body, "max_tokens": 2})
    cache = ResponseCache(tmp_path)
    assert cache.get(key) is None
    cache.put(key, {"choices": []})
    assert ResponseCache(tmp_path).get(key) == {"choices": []} and len(cache) == 1

"""A generated reply as the OpenAI chat-completions stream (server-sent events), for clients
that ask for ``stream: true`` (the OpenAI SDKs' ``stream=True``, chat front ends).

``drum serve`` generates replies in batches across requests (``drum.serve.batching``), so a
reply is whole before its first event goes out: the stream carries it as the OpenAI protocol
lays a stream out, but in one content chunk rather than token by token. The events, each
``data: <json>\\n\\n``:

1. ``{"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"role":
   "assistant", "content": ""}, "finish_reason": null}]}``;
2. the reply: ``"delta": {"content": <text>}`` (left out for an empty reply);
3. ``"delta": {}, "finish_reason": "stop"``;
4. with ``stream_options.include_usage``: ``"choices": [], "usage": {...}``;
5. ``data: [DONE]``.

Every chunk carries the completion's ``id``, ``created`` and ``model``; ``usage`` is ``null`` on
every chunk but the usage chunk where usage was asked for, as OpenAI sends it. Errors found
before the reply (a bad request, a prompt over the context) are the usual JSON errors with
their HTTP status, not events.
"""

from __future__ import annotations

import json
from typing import Any

MEDIA_TYPE = "text/event-stream"
DONE = "data: [DONE]\n\n"


def _event(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n"


def completion_events(completion: dict[str, Any], include_usage: bool) -> list[str]:
    """The server-sent events of ``completion`` (a ``chat.completion`` dict, one choice), in
    order, ``[DONE]`` last (module docstring)."""
    [choice] = completion["choices"]
    text = choice["message"]["content"]
    usage_field: dict[str, Any] = {"usage": None} if include_usage else {}

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
        return _event(
            {
                "id": completion["id"],
                "object": "chat.completion.chunk",
                "created": completion["created"],
                "model": completion["model"],
                "choices": choices,
                **usage_field,
                **extra,
            }
        )

    def delta(content: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": content, "logprobs": None, "finish_reason": finish}]

    events = [chunk(delta({"role": "assistant", "content": ""}))]
    if text:
        events.append(chunk(delta({"content": text})))
    events.append(chunk(delta({}, choice["finish_reason"])))
    if include_usage:
        events.append(chunk([], usage=completion["usage"]))
    events.append(DONE)
    return events

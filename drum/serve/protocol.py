"""The subset of the OpenAI chat-completions request ``drum serve`` answers, parsed into a
``ChatRequest`` (an ``ICLPrompt`` and what to do with it), every refusal a ``RequestError``
(HTTP 400) whose message names the field.

Accepted: ``messages`` alternating ``user`` / ``assistant`` (each user message one turn of the
prompt: its text and ``image_url`` parts in order, images as ``data:image/...;base64,`` URLs
only: the server fetches nothing; string content is one text part); ``model``;
``max_tokens`` / ``max_completion_tokens``; ``temperature`` 0 or absent (replies are greedy);
``n`` 1; ``stream`` for generation (``drum.serve.streaming``; ``stream_options`` with
``include_usage`` alone); vLLM's ``prompt_logprobs`` (0 to ``MAX_PROMPT_LOGPROBS``),
``add_generation_prompt``, ``continue_final_message`` and ``return_token_ids``. Other OpenAI
fields (``top_p``, ``seed``, ``user``, ...) are ignored as vLLM ignores what does not apply.

A request either ends with a user message (a reply is generated) or, with
``continue_final_message: true`` and ``add_generation_prompt: false``, with the assistant
message whose tokens are scored (``prompt_logprobs`` is then required: ``drum serve`` continues
an open answer only to score it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drum.data.images import decode_image
from drum.lvlm.prompt import ICLPrompt, ImagePart, Part, TextPart, Turn
from drum.utils.io import atomic_write_bytes

DEFAULT_MAX_TOKENS = 16
MAX_PROMPT_LOGPROBS = 20


class RequestError(ValueError):
    """A request ``drum serve`` cannot answer (HTTP 400); the message names the field."""


@dataclass(frozen=True)
class ChatRequest:
    """One parsed request: the prompt, the answer to score (None: generate), the reply's
    length, how many top log-probabilities per scored position (None: no scoring), whether to
    return token ids, the model named (None: not named), and whether the reply is streamed as
    server-sent events (with a usage chunk at the end)."""

    prompt: ICLPrompt
    answer: str | None
    max_tokens: int
    prompt_logprobs: int | None
    return_token_ids: bool
    model: str | None
    stream: bool = False
    include_usage: bool = False


class ImageStore:
    """Decoded data-URL images as files named by their content's SHA-256 in ``directory``
    (``HFLVLM`` reads images from paths; the same bytes make the same file, so its image
    caches work across requests)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path_of(self, url: Any, where: str) -> Path:
        if not isinstance(url, str) or not url.startswith("data:"):
            shown = url[:40] + "..." if isinstance(url, str) and len(url) > 40 else url
            raise RequestError(
                f"{where}: drum serve takes images as data:image/...;base64, URLs only (it "
                f"fetches nothing), got {shown!r}"
            )
        header, comma, data = url.partition(",")
        if not comma or not header.endswith(";base64"):
            raise RequestError(f"{where}: a data URL must be data:<mime>;base64,<data>")
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError(f"{where}: the image's base64 data does not decode") from None
        path = self.directory / hashlib.sha256(raw).hexdigest()
        if not path.is_file():
            # A name of its own per request: requests are parsed on several threads, and two
            # carrying the same image would otherwise stage, check and rename one shared file.
            staged = self.directory / f"{path.name}.{uuid.uuid4().hex}.check"
            atomic_write_bytes(staged, raw)
            try:
                decode_image(staged)
            except (OSError, SyntaxError, ValueError) as error:
                staged.unlink(missing_ok=True)
                raise RequestError(f"{where}: not a readable image ({error})") from None
            staged.replace(path)
        return path


def _text(content: Any, where: str) -> str:
    """An assistant message's text: a string, or text parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        for p in content
    ):
        return "".join(p["text"] for p in content)
    raise RequestError(f"{where}: an assistant message's content must be text")


def _parts(content: Any, where: str, images: ImageStore) -> tuple[Part, ...]:
    """A user message's parts, in order."""
    if isinstance(content, str):
        return (TextPart(content),)
    if not isinstance(content, list) or not content:
        raise RequestError(f"{where}: content must be a string or a non-empty list of parts")
    parts: list[Part] = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append(TextPart(part["text"]))
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            parts.append(ImagePart(images.path_of(url, f"{where}[{i}].image_url")))
        else:
            raise RequestError(
                f"{where}[{i}]: a part must be {{'type': 'text', 'text': ...}} or "
                "{'type': 'image_url', 'image_url': {'url': 'data:...'}}"
            )
    return tuple(parts)


def _int(body: dict[str, Any], name: str, default: int | None, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise RequestError(f"{name} must be an integer from {low} to {high}, got {value!r}")
    return value


def _flag(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise RequestError(f"{name} must be true or false, got {value!r}")
    return value


def parse_chat_request(body: Any, images: ImageStore) -> ChatRequest:
    """``body`` (decoded JSON) as a ``ChatRequest``, or a ``RequestError`` naming the field."""
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    stream = _flag(body, "stream", False)
    options = body.get("stream_options")
    if options is not None and not (
        stream and isinstance(options, dict) and set(options) <= {"include_usage"}
    ):
        raise RequestError(
            'stream_options must be {"include_usage": true|false}, and only with stream: true'
        )
    include_usage = _flag(options or {}, "include_usage", False)
    if _int(body, "n", 1, 1, 1) != 1:
        raise RequestError("n must be 1")
    temperature = body.get("temperature")
    if temperature not in (None, 0, 0.0):
        raise RequestError(f"temperature: drum serve replies greedily (0), got {temperature!r}")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise RequestError(f"model must be a string, got {model!r}")
    max_tokens = _int(body, "max_completion_tokens", None, 1, 4096)
    if max_tokens is None:
        max_tokens = _int(body, "max_tokens", DEFAULT_MAX_TOKENS, 1, 4096)
    logprobs = _int(body, "prompt_logprobs", None, 0, MAX_PROMPT_LOGPROBS)
    continued = _flag(body, "continue_final_message", False)
    generation_prompt = _flag(body, "add_generation_prompt", True)
    if continued and generation_prompt:
        raise RequestError(
            "continue_final_message and add_generation_prompt cannot both be true (send "
            "add_generation_prompt: false)"
        )
    if continued != (logprobs is not None):
        raise RequestError(
            "drum serve returns prompt_logprobs for an open final assistant message: send "
            "prompt_logprobs with continue_final_message: true, add_generation_prompt: false"
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages must be a non-empty list")
    turns: list[Turn] = []
    pending: tuple[Part, ...] | None = None  # the last user turn, waiting for its answer
    answer = None
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        role = message.get("role") if isinstance(message, dict) else None
        if role == "user" and pending is None:
            pending = _parts(message.get("content"), f"{where}.content", images)
        elif role == "assistant" and pending is not None:
            text = _text(message.get("content"), f"{where}.content")
            if i == len(messages) - 1 and continued:
                answer = text
            else:
                turns.append(Turn(pending, text))
                pending = None
        else:
            expected = "user" if pending is None else "assistant"
            raise RequestError(
                f"{where}: expected a {expected} message, got role {role!r} (drum serve reads "
                "user / assistant turns in alternation, no system message)"
            )
    if pending is None:
        raise RequestError("messages must end with a user message (or, with "
                           "continue_final_message, the assistant answer to score)")  # fmt: skip
    if continued and answer is None:
        raise RequestError("continue_final_message: the last message must be the assistant's")
    if stream and continued:
        raise RequestError(
            "stream: drum serve streams generated replies only; a scoring request "
            "(prompt_logprobs) is answered whole (send stream: false)"
        )
    return ChatRequest(
        prompt=ICLPrompt(tuple(turns), Turn(pending)),
        answer=answer,
        max_tokens=max_tokens,
        prompt_logprobs=logprobs,
        return_token_ids=_flag(body, "return_token_ids", False),
        model=model,
        stream=stream,
        include_usage=include_usage,
    )

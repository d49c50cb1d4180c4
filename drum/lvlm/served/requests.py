"""The chat-completions requests a served LVLM is sent, and the answer's log-probability read
back from the responses.

Messages: each turn of an ``ICLPrompt`` is a user message whose content parts keep the turn's
order (``{"type": "text"}``; ``{"type": "image_url", "image_url": {"url": "data:image/png;
base64,..."}}``: the image file's own bytes), each demonstration's answer an assistant message.
Generation is greedy (``temperature: 0``) and sends nothing beyond the OpenAI API, so it works
with any OpenAI-compatible server or hosted API.

Scoring uses vLLM's extensions of the request (read in vLLM's
``entrypoints/openai/chat_completion/protocol.py`` and ``serving.py``; ``return_token_ids``
exists since vLLM 0.10.2): two requests per (prompt, answer).

1. The prompt alone, rendered as for generation (``add_generation_prompt``, the default),
   ``max_tokens: 1``: its ``usage.prompt_tokens`` is ``P``, the prompt's length in tokens,
   images expanded as the engine expands them.
2. The prompt with the answer as a final assistant message that the template leaves open
   (``continue_final_message: true, add_generation_prompt: false``), ``prompt_logprobs: 0``
   (the log-probability of each prompt token itself) and ``return_token_ids: true``. The
   response's top-level ``prompt_logprobs`` is a list over the prompt's tokens (``null`` at the
   first), each ``{"<token id>": {"logprob", "rank", "decoded_token"}}``, and
   ``prompt_token_ids`` the tokens. The answer is the tokens from ``P`` on; its score is their
   log-probabilities summed (``ScoreResult``), as ``HFLVLM`` scores an answer's tokens after
   its generation prompt. Where both responses carry token ids, the first ``P`` must agree
   (else the template renders an answer turn unlike a generation prompt: ``ResponseError``).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from PIL import Image

from drum.data.images import open_image
from drum.lvlm.base import ScoreResult
from drum.lvlm.prompt import ICLPrompt, ImagePart, TextPart


class ResponseError(ValueError):
    """Responses from which no answer log-probability can be read (the message says why)."""


@lru_cache(maxsize=4096)
def _data_url(path: str, mtime_ns: int) -> str:
    """``path``'s bytes as a base64 data URL, its MIME type from the decoded format."""
    with open_image(path) as image:  # the pixel limit, and the real format
        mime = Image.MIME.get(image.format or "", "image/png")
    return f"data:{mime};base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def image_url(path: Path) -> str:
    """The data URL of the image at ``path`` (the file's own bytes: the server decodes what
    the in-process model would have read)."""
    return _data_url(str(path), path.stat().st_mtime_ns)


def chat_messages(prompt: ICLPrompt) -> list[dict[str, Any]]:
    """``prompt`` as OpenAI chat messages, parts in prompt order (module docstring)."""
    messages: list[dict[str, Any]] = []
    for turn in (*prompt.demos, prompt.query):
        content: list[dict[str, Any]] = []
        for part in turn.parts:
            if isinstance(part, ImagePart):
                content.append({"type": "image_url", "image_url": {"url": image_url(part.path)}})
            else:
                assert isinstance(part, TextPart)
                content.append({"type": "text", "text": part.text})
        messages.append({"role": "user", "content": content})
        if turn.answer is not None:
            messages.append({"role": "assistant", "content": turn.answer})
    return messages


def generate_body(model: str, prompt: ICLPrompt, max_new_tokens: int) -> dict[str, Any]:
    """The request for a greedy reply of at most ``max_new_tokens`` tokens."""
    return {
        "model": model,
        "messages": chat_messages(prompt),
        "max_tokens": max_new_tokens,
        "temperature": 0.0,
    }


def prefix_body(model: str, prompt: ICLPrompt) -> dict[str, Any]:
    """Request 1 of a score: the prompt's length ``P`` (module docstring)."""
    return {**generate_body(model, prompt, 1), "return_token_ids": True}


def scored_body(model: str, prompt: ICLPrompt, answer: str) -> dict[str, Any]:
    """Request 2 of a score: the prompt log-probabilities with ``answer`` continued."""
    body = generate_body(model, prompt, 1)
    body["messages"].append({"role": "assistant", "content": answer})
    body.update(
        add_generation_prompt=False,
        continue_final_message=True,
        prompt_logprobs=0,
        return_token_ids=True,
    )
    return body


def reply_text(response: dict[str, Any]) -> str:
    """The first choice's message text, stripped (as ``HFLVLM.generate`` strips its replies)."""
    try:
        content = response["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        shown = str(response)[:200]
        raise ResponseError(f"a response without choices[0].message.content: {shown}") from None
    return (content or "").strip()


def has_prompt_logprobs(response: dict[str, Any]) -> bool:
    """Whether ``response`` carries prompt log-probabilities (vLLM's ``prompt_logprobs``)."""
    return isinstance(response.get("prompt_logprobs"), list)


def answer_score(prefix: dict[str, Any], scored: dict[str, Any]) -> ScoreResult:
    """The answer's log-probability from request 1's and request 2's responses."""
    try:
        start = int(prefix["usage"]["prompt_tokens"])
    except (KeyError, TypeError, ValueError):
        raise ResponseError("the prompt's response has no usage.prompt_tokens") from None
    logprobs = scored.get("prompt_logprobs")
    if not isinstance(logprobs, list):
        raise ResponseError("the scored response has no prompt_logprobs")
    ids: Sequence[int] | None = scored.get("prompt_token_ids")
    prefix_ids: Sequence[int] | None = prefix.get("prompt_token_ids")
    if ids is not None and prefix_ids is not None and list(ids[:start]) != list(prefix_ids):
        raise ResponseError(
            "the prompt's tokens differ from the first tokens of the prompt with its answer "
            "(the chat template renders an answer turn unlike a generation prompt)"
        )
    if len(logprobs) <= start:
        raise ResponseError(
            f"the answer adds no token to the prompt ({len(logprobs)} prompt tokens with it, "
            f"{start} without)"
        )
    total = 0.0
    for position in range(start, len(logprobs)):
        entry = logprobs[position]
        if not isinstance(entry, dict) or not entry:
            raise ResponseError(f"prompt_logprobs[{position}] (an answer token) is {entry!r}")
        if ids is not None:
            picked = entry.get(str(ids[position]))
        elif len(entry) == 1:  # prompt_logprobs=0: the prompt token's own entry alone
            picked = next(iter(entry.values()))
        else:
            picked = None
        if not isinstance(picked, dict) or "logprob" not in picked:
            raise ResponseError(f"prompt_logprobs[{position}] has no entry for the prompt's token")
        # vLLM writes -9999.0 for -inf (clamp_prompt_logprobs): kept as it is, a finite
        # "as unlikely as can be" that rankings and means can still use.
        total += float(picked["logprob"])
    tokens = len(logprobs) - start
    return ScoreResult(sum=total, mean=total / tokens, tokens=tokens)

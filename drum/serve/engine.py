"""``ServeEngine``: what ``drum serve`` runs for a parsed request, on an ``HFLVLM`` or an
adapter on one (VPG-C), one request at a time (a lock: the model, its hooks and its caches are
not thread-safe; requests queue, and the app answers 429 beyond its limit).

* Generation: the model's own ``generate`` (greedy), so a served reply is the in-process reply.
* Scoring (``continue_final_message``): the answer's tokens are appended to the prompt rendered
  with its generation prompt, exactly as ``HFLVLM.score`` appends them, and the one forward
  pass ``HFLVLM.score_inputs`` builds (the adapter acting, where there is one) gives each
  answer token's log-probability. The response carries them in vLLM's shape: a list over the
  prompt's tokens (images expanded), ``null`` where nothing was asked (the first token in vLLM;
  here every position before the answer: computing the full vocabulary's log-softmax there
  would cost what scoring saves), then ``{"<token id>": {"logprob", "rank",
  "decoded_token"}}`` per answer token, with the ``k`` most likely tokens beside it for
  ``prompt_logprobs: k``. ``usage.prompt_tokens`` of a generation request is the prompt's
  length in the same tokens: what a client subtracts to find the answer.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch

from drum.lvlm.base import LVLM
from drum.lvlm.hf import HFLVLM
from drum.serve.protocol import ChatRequest, RequestError


def _completion(name: str, text: str, prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": name,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


class ServeEngine:
    """``lvlm`` (an ``HFLVLM``, or a model wrapping one as ``.base`` with an ``active()``
    context, as ``VPGCLVLM``) served under ``name``.

    Example::

        engine = ServeEngine(HFLVLM(path), "my-model")
        engine.complete(parse_chat_request(body, images))  # a chat.completion dict
    """

    def __init__(self, lvlm: LVLM, name: str) -> None:
        base = getattr(lvlm, "base", lvlm)
        if not isinstance(base, HFLVLM):
            raise TypeError(f"drum serve serves an HFLVLM or an adapter on one, got {lvlm!r}")
        self.lvlm = lvlm
        self.base = base
        self.name = name
        # The adapter's hooks around a pass of the base (VPGCLVLM.active); none for a plain model.
        self._acting: Callable[[], AbstractContextManager[Any]] = getattr(
            lvlm, "active", nullcontext
        )
        self._lock = threading.Lock()

    def complete(self, request: ChatRequest) -> dict[str, Any]:
        """The chat.completion response to ``request`` (module docstring)."""
        with self._lock:
            if request.answer is None:
                return self._generate(request)
            return self._score(request)

    @torch.inference_mode()
    def _prompt_ids(self, request: ChatRequest) -> list[int]:
        """The prompt's tokens as scoring and generation see them (images expanded)."""
        inputs = self.base.score_inputs([request.prompt], [[]], positions=False)
        return inputs.input_ids[0, : inputs.prompt_lengths[0]].tolist()

    def _generate(self, request: ChatRequest) -> dict[str, Any]:
        prompt_ids = self._prompt_ids(request)
        [text] = self.lvlm.generate([request.prompt], max_new_tokens=request.max_tokens)
        produced = len(self.base.tokenizer(text, add_special_tokens=False)["input_ids"])
        response = _completion(self.name, text, len(prompt_ids), produced)
        if request.return_token_ids:
            response["prompt_token_ids"] = prompt_ids
        return response

    @torch.inference_mode()
    def _score(self, request: ChatRequest) -> dict[str, Any]:
        assert request.answer is not None and request.prompt_logprobs is not None
        tokenizer = self.base.tokenizer
        answer_ids = tokenizer(request.answer, add_special_tokens=False)["input_ids"]
        if not answer_ids:
            raise RequestError(f"the final assistant message {request.answer!r} has no tokens")
        with self._acting():
            inputs = self.base.score_inputs([request.prompt], [answer_ids])
            logits = self.base.forward(
                inputs.input_ids, inputs.attention_mask, inputs.visual, **inputs.extra
            ).logits
        rows, positions, tokens = inputs.answer_index(logits.device)
        log_probs = torch.log_softmax(logits[rows, positions].float(), dim=-1)  # (T, V)
        picked = log_probs.gather(1, tokens[:, None])[:, 0]  # (T,)
        ranks = (log_probs > picked[:, None]).sum(dim=1) + 1
        top = log_probs.topk(request.prompt_logprobs, dim=-1) if request.prompt_logprobs else None
        prompt_length = inputs.prompt_lengths[0]
        ids = inputs.input_ids[0, : prompt_length + len(answer_ids)].tolist()
        entries: list[dict[str, Any] | None] = [None] * prompt_length
        for t, token in enumerate(answer_ids):
            entry = {}
            if top is not None:
                for rank, (value, other) in enumerate(
                    zip(top.values[t].tolist(), top.indices[t].tolist(), strict=True), start=1
                ):
                    entry[str(other)] = self._logprob(value, rank, other)
            entry[str(token)] = self._logprob(picked[t].item(), int(ranks[t]), token)
            entries.append(entry)
        response = _completion(self.name, "", len(ids), 0)
        response["prompt_logprobs"] = entries
        if request.return_token_ids:
            response["prompt_token_ids"] = ids
        return response

    def _logprob(self, value: float, rank: int, token: int) -> dict[str, Any]:
        # JSON has no -inf: vLLM's clamp_prompt_logprobs writes -9999.0 for it, as here.
        return {
            "logprob": max(value, -9999.0),
            "rank": rank,
            "decoded_token": self.base.tokenizer.decode([token]),
        }

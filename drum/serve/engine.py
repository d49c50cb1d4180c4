"""``ServeEngine``: what ``drum serve`` runs for parsed requests, on an ``HFLVLM`` or an
adapter on one (VPG-C), requests batched across clients (``drum.serve.batching``): those that
arrive while the model is busy, or within ``batch_wait_ms``, run together, at most
``max_batch_size`` of them, the model on one thread at a time (it, its hooks and its caches
are not thread-safe; beyond the app's limit requests are answered 429). ``max_batch_size`` 1
runs each request alone, in arrival order.

A gathered batch runs as one pass per kind: the scoring requests in one ``score_inputs``
forward (one per image count for a family that batches by image count), the generation
requests in one ``generate`` call per ``max_tokens``. Each request gets exactly its own
response: a request refused up front (an answer of no tokens) fails alone, and a pass that
fails (a prompt longer than the context, the model failing) runs again one request at a time,
so only the request at fault fails. ``batches``, ``requests`` and ``passes`` count what ran.

* Generation: the model's own ``generate`` (greedy), so a served reply is the in-process reply.
* Scoring (``continue_final_message``): the answer's tokens are appended to the prompt rendered
  with its generation prompt, exactly as ``HFLVLM.score`` appends them, and the one forward
  pass ``HFLVLM.score_inputs`` builds (the adapter acting, where there is one) gives each
  answer token's log-probability (right padding: a row's scores are its solo scores up to
  float rounding). The response carries them in vLLM's shape: a list over the
  prompt's tokens (images expanded), ``null`` where nothing was asked (the first token in vLLM;
  here every position before the answer: computing the full vocabulary's log-softmax there
  would cost what scoring saves), then ``{"<token id>": {"logprob", "rank",
  "decoded_token"}}`` per answer token, with the ``k`` most likely tokens beside it for
  ``prompt_logprobs: k``. ``usage.prompt_tokens`` of a generation request is the prompt's
  length in the same tokens: what a client subtracts to find the answer.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch

from drum.lvlm.base import LVLM
from drum.lvlm.hf import HFLVLM, ScoreInputs
from drum.lvlm.image_count_groups import in_image_count_groups
from drum.lvlm.prompt import ICLPrompt
from drum.serve.batching import Batcher, BatchingConfig
from drum.serve.protocol import ChatRequest, RequestError

log = logging.getLogger(__name__)

Outcome = dict[str, Any] | Exception  # a request's response, or why it failed


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
    context, as ``VPGCLVLM``) served under ``name``, requests batched as ``batching`` says
    (default ``BatchingConfig()``).

    Example::

        engine = ServeEngine(HFLVLM(path), "my-model", BatchingConfig(max_batch_size=16))
        engine.complete(parse_chat_request(body, images))  # a chat.completion dict
    """

    def __init__(self, lvlm: LVLM, name: str, batching: BatchingConfig | None = None) -> None:
        base = getattr(lvlm, "base", lvlm)
        if not isinstance(base, HFLVLM):
            raise TypeError(f"drum serve serves an HFLVLM or an adapter on one, got {lvlm!r}")
        self.lvlm = lvlm
        self.base = base
        self.name = name
        self.batching = batching or BatchingConfig()
        # The adapter's hooks around a pass of the base (VPGCLVLM.active); none for a plain model.
        self._acting: Callable[[], AbstractContextManager[Any]] = getattr(
            lvlm, "active", nullcontext
        )
        self._batcher: Batcher[ChatRequest, dict[str, Any]] = Batcher(self.run_batch, self.batching)
        self.passes = 0  # model passes run: scoring forwards and generate calls

    @property
    def batches(self) -> int:
        """Batches run (each one or more passes)."""
        return self._batcher.batches

    @property
    def requests(self) -> int:
        """Requests answered (a response or an error)."""
        return self._batcher.requests

    @property
    def largest_batch(self) -> int:
        """The most requests one batch answered."""
        return self._batcher.largest

    @property
    def busy_seconds(self) -> float:
        """Wall-clock seconds spent running batches (the model's share of the time)."""
        return self._batcher.busy_seconds

    @property
    def queued(self) -> int:
        """Requests waiting for a batch now (not those running)."""
        return self._batcher.queued

    def complete(self, request: ChatRequest) -> dict[str, Any]:
        """The chat.completion response to ``request`` (module docstring), in a batch with the
        requests of other threads; raises what failed it (``RequestError``,
        ``ContextOverflowError``, the model's error)."""
        return self._batcher.submit(request)

    def run_batch(self, requests: list[ChatRequest]) -> list[Outcome]:
        """Each request's response or error, the batch run as one pass per kind (module
        docstring); what the batcher runs on one thread at a time."""
        groups: dict[tuple[str, int], list[int]] = {}
        for index, request in enumerate(requests):
            key = ("generate", request.max_tokens) if request.answer is None else ("score", 0)
            groups.setdefault(key, []).append(index)
        outcomes: list[Outcome] = [RuntimeError("not run")] * len(requests)
        for (kind, _), rows in groups.items():
            run = self._generate if kind == "generate" else self._score
            for index, outcome in zip(
                rows, self._alone_on_failure(run, [requests[i] for i in rows]), strict=True
            ):
                outcomes[index] = outcome
        return outcomes

    def _alone_on_failure(
        self, run: Callable[[list[ChatRequest]], list[Outcome]], requests: list[ChatRequest]
    ) -> list[Outcome]:
        """``run(requests)``, or where that fails, ``run`` of each request alone: a request at
        fault (a prompt longer than the context) fails alone, not its batch-mates."""
        try:
            return run(requests)
        except Exception as error:
            if len(requests) == 1:
                return [error]
            log.debug("drum serve: a batch of %d failed (%s); running it one at a time",
                      len(requests), error)  # fmt: skip
        outcomes: list[Outcome] = []
        for request in requests:
            try:
                outcomes += run([request])
            except Exception as error:
                outcomes.append(error)
        return outcomes

    @torch.inference_mode()
    def _prompt_ids(self, prompts: Sequence[ICLPrompt]) -> list[list[int]]:
        """The prompts' tokens as scoring and generation see them (images expanded)."""
        inputs = self.base.score_inputs(prompts, [[] for _ in prompts], positions=False)
        return [
            inputs.input_ids[row, :length].tolist()
            for row, length in enumerate(inputs.prompt_lengths)
        ]

    def _generate(self, requests: list[ChatRequest]) -> list[Outcome]:
        """Replies of requests of one ``max_tokens``: one ``generate`` call."""
        prompts = [request.prompt for request in requests]
        prompt_ids = self._prompt_ids(prompts)
        texts = self.lvlm.generate(
            prompts, max_new_tokens=requests[0].max_tokens, batch_size=len(prompts)
        )
        self.passes += 1
        outcomes: list[Outcome] = []
        for request, ids, text in zip(requests, prompt_ids, texts, strict=True):
            produced = len(self.base.tokenizer(text, add_special_tokens=False)["input_ids"])
            response = _completion(self.name, text, len(ids), produced)
            if request.return_token_ids:
                response["prompt_token_ids"] = ids
            outcomes.append(response)
        return outcomes

    def _score(self, requests: list[ChatRequest]) -> list[Outcome]:
        """Prompt log-probabilities of scoring requests: those whose answer has tokens in one
        forward (per image count where the family asks)."""
        outcomes: list[Outcome] = [RuntimeError("not run")] * len(requests)
        scored: list[int] = []
        answer_ids: list[list[int]] = []
        for index, request in enumerate(requests):
            assert request.answer is not None and request.prompt_logprobs is not None
            ids = self.base.tokenizer(request.answer, add_special_tokens=False)["input_ids"]
            if ids:
                scored.append(index)
                answer_ids.append(ids)
            else:
                outcomes[index] = RequestError(
                    f"the final assistant message {request.answer!r} has no tokens"
                )

        def run(rows: list[int]) -> list[dict[str, Any]]:
            return self._score_pass(
                [requests[scored[r]] for r in rows], [answer_ids[r] for r in rows]
            )

        if not scored:
            return outcomes
        prompts = [requests[index].prompt for index in scored]
        responses = in_image_count_groups(prompts, run, self.base.family.batch_by_image_count)
        for index, response in zip(scored, responses, strict=True):
            outcomes[index] = response
        return outcomes

    @torch.inference_mode()
    def _score_pass(
        self, requests: list[ChatRequest], answer_ids: list[list[int]]
    ) -> list[dict[str, Any]]:
        """One forward over the requests' prompts and answers; each row's response."""
        with self._acting():
            inputs = self.base.score_inputs([r.prompt for r in requests], answer_ids)
            logits = self.base.forward(
                inputs.input_ids, inputs.attention_mask, inputs.visual, **inputs.extra
            ).logits
        self.passes += 1
        rows, positions, tokens = inputs.answer_index(logits.device)
        log_probs = torch.log_softmax(logits[rows, positions].float(), dim=-1)  # (T, V)
        picked = log_probs.gather(1, tokens[:, None])[:, 0]  # (T,)
        ranks = (log_probs > picked[:, None]).sum(dim=1) + 1
        responses = []
        start = 0  # the row's first answer token among the batch's T
        for row, request in enumerate(requests):
            end = start + len(answer_ids[row])
            rows_of = slice(start, end)
            responses.append(
                self._score_response(
                    request, inputs, row, log_probs[rows_of], picked[rows_of], ranks[rows_of]
                )
            )
            start = end
        return responses

    def _score_response(
        self,
        request: ChatRequest,
        inputs: ScoreInputs,
        row: int,
        log_probs: torch.Tensor,
        picked: torch.Tensor,
        ranks: torch.Tensor,
    ) -> dict[str, Any]:
        """Row ``row``'s response from its answer tokens' log-probabilities ``(T, V)``, their
        picked values and ranks ``(T,)``."""
        answer_ids = inputs.answer_ids[row]
        k = request.prompt_logprobs
        top = log_probs.topk(k, dim=-1) if k else None
        prompt_length = inputs.prompt_lengths[row]
        ids = inputs.input_ids[row, : prompt_length + len(answer_ids)].tolist()
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

"""``ServedLVLM``: an ``LVLM`` behind any OpenAI-compatible chat-completions server (vLLM,
SGLang, LMDeploy, TGI, ``drum serve``, a hosted API).

``generate`` sends one greedy request per prompt (images as base64 data URLs in prompt order;
``drum.lvlm.served.requests``), ``config.concurrency`` in flight. ``score`` needs a server
that returns prompt log-probabilities (vLLM's ``prompt_logprobs``; ``drum serve``): it asks
for the first (prompt, answer) alone and, where the server returns none or refuses the
request, raises ``ScoreUnavailable`` naming what is missing before any other request is sent;
the other prompts' requests go out with those sharing demonstrations together
(``grouped_by_demos``), so that vLLM's prefix caching computes a demonstration once;
generation-only use (``drum eval`` of generated answers, ``drum demon eval``) never needs it.
Transport, retries and the response cache are ``ChatClient``'s.

What evaluation records of the model: ``name`` is the served model's name; the context length
and truncation counts are the server's business (None: not reported); ``fingerprint`` is the
model name, so feedback caches keyed on it survive a server restarted elsewhere.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from tqdm.auto import tqdm

from drum.lvlm.base import LVLM, ScoreResult
from drum.lvlm.prompt import ICLPrompt, grouped_by_demos
from drum.lvlm.served.client import ChatClient, RequestRefused, ServedError
from drum.lvlm.served.config import ServedConfig
from drum.lvlm.served.requests import (
    ResponseError,
    answer_score,
    generate_body,
    has_prompt_logprobs,
    prefix_body,
    reply_text,
    scored_body,
)


class ScoreUnavailable(ServedError):
    """The server offers no prompt log-probabilities, so ``score`` cannot work with it."""


def _unavailable(config: ServedConfig, what: str) -> ScoreUnavailable:
    return ScoreUnavailable(
        f"{config.base_url} (model {config.model!r}) {what}: score needs the prompt's "
        "log-probabilities, which vLLM returns for prompt_logprobs with "
        "continue_final_message (vllm serve, drum serve); generate works without them"
    )


class ServedLVLM(LVLM):
    """A served model (module docstring).

    Example::

        lvlm = ServedLVLM(ServedConfig("http://127.0.0.1:8000/v1", "Qwen/Qwen2.5-VL-7B-Instruct"))
        lvlm = ServedLVLM.from_spec("openai:http://127.0.0.1:8000/v1#Qwen/Qwen2.5-VL-7B-Instruct")
        [reply] = lvlm.generate([build_prompt(demos, query)], max_new_tokens=8)
    """

    def __init__(self, config: ServedConfig) -> None:
        self.config = config
        self.name = config.model
        self.client = ChatClient(config)

    @classmethod
    def from_spec(cls, spec: str) -> ServedLVLM:
        """The model ``openai:<base_url>#<model>[?option=value&...]`` names
        (``ServedConfig.from_spec``)."""
        return cls(ServedConfig.from_spec(spec))

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256(self.config.model.encode("utf-8")).hexdigest()[:16]
        return f"served-{digest}"

    def close(self) -> None:
        self.client.close()

    def _post_all(self, bodies: list[dict], what: str, progress: bool) -> list[dict]:
        bar = tqdm(total=len(bodies), desc=what, disable=not progress or len(bodies) < 2)
        try:
            return self.client.post_many(bodies, done=lambda: bar.update(1))
        finally:
            bar.close()

    def generate(
        self,
        prompts: Sequence[ICLPrompt],
        max_new_tokens: int = 8,
        batch_size: int = 32,
        progress: bool = False,
    ) -> list[str]:
        """Greedy replies, ``config.concurrency`` requests in flight (``batch_size`` is the
        in-process backends' and unused here)."""
        bodies = [generate_body(self.config.model, p, max_new_tokens) for p in prompts]
        try:
            return [reply_text(r) for r in self._post_all(bodies, "generating", progress)]
        except ResponseError as error:
            raise ServedError(
                f"{self.config.base_url} (model {self.config.model!r}): {error}"
            ) from None

    def _first_pair(self, prompt: ICLPrompt, answer: str) -> tuple[dict, dict]:
        """Request 1 and 2 of the first score, checked for prompt log-probabilities."""
        try:  # a hosted API refuses vLLM's fields: "Unrecognized request argument supplied: ..."
            prefix = self.client.post(prefix_body(self.config.model, prompt))
            scored = self.client.post(scored_body(self.config.model, prompt, answer))
        except RequestRefused as error:
            raise _unavailable(
                self.config, f"refused a scoring request ({error.server_message})"
            ) from error
        if not has_prompt_logprobs(scored):
            raise _unavailable(self.config, "returned no prompt_logprobs")
        return prefix, scored

    def score(
        self,
        prompts: Sequence[ICLPrompt],
        answers: Sequence[str],
        batch_size: int = 32,
        progress: bool = False,
    ) -> list[ScoreResult]:
        """``log p(answers[i] | prompts[i])`` from the server's prompt log-probabilities
        (``drum.lvlm.served.requests``); ``ScoreUnavailable`` up front where it has none."""
        if len(prompts) != len(answers):
            raise ValueError(f"{len(prompts)} prompts but {len(answers)} answers")
        if not prompts:
            return []
        first = self._first_pair(prompts[0], answers[0])
        model = self.config.model
        # Each prompt's two requests together, prompts of one demonstration set next to each
        # other: a server's prefix caching (vLLM's) then computes a shared prefix once.
        order = [1 + i for i in grouped_by_demos(prompts[1:])]
        bodies = [
            body
            for i in order
            for body in (prefix_body(model, prompts[i]), scored_body(model, prompts[i], answers[i]))
        ]
        responses = self._post_all(bodies, "scoring", progress)
        pairs = [first] * len(prompts)
        for k, i in enumerate(order):
            pairs[i] = (responses[2 * k], responses[2 * k + 1])
        results = []
        for index, (prefix, scored) in enumerate(pairs):
            try:
                results.append(answer_score(prefix, scored))
            except ResponseError as error:
                raise ServedError(
                    f"{self.config.base_url} (model {model!r}), prompt {index}: {error}"
                ) from None
        return results

"""Prompts against a model's context length: how long the context is, and what to do with a
prompt that does not fit (refuse it, or drop its oldest demonstrations).

A prompt's tokens plus its reserve (the answer's tokens when scoring, ``max_new_tokens`` when
generating) must not exceed the context. ``"error"`` raises ``ContextOverflowError`` naming
the prompt and the lengths; ``"drop_demos"`` drops whole demonstration turns, oldest first (so
every image keeps all its visual tokens), until the prompt fits, and logs a warning for each
prompt it shortened. Prompts that fit are returned untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from drum.lvlm.prompt import ICLPrompt

log = logging.getLogger(__name__)

# What to do with a prompt longer than the context: refuse it, or drop its oldest demos.
CONTEXT_OVERFLOW = ("error", "drop_demos")
# ``model_max_length`` at or above this is transformers' "no limit declared" placeholder.
NO_DECLARED_LIMIT = 10**7


class ContextOverflowError(ValueError):
    """A prompt (with its answer or generation budget) longer than the model's context."""


def context_length(config: Any, tokenizer: Any) -> int | None:
    """Tokens the model reads at most: the text config's ``max_position_embeddings``, else
    the tokenizer's ``model_max_length`` when it declares one; None when neither does."""
    text_config = getattr(config, "text_config", None) or config
    limit = getattr(text_config, "max_position_embeddings", None)
    if isinstance(limit, int) and limit > 0:
        return limit
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < NO_DECLARED_LIMIT:
        return limit
    return None


def fit_to_context(
    prompts: Sequence[ICLPrompt],
    prompt_ids: Sequence[list[int]],
    reserve: Sequence[int],
    start: int,
    what: str,
    limit: int | None,
    policy: str,
    model_name: str,
    encoded_length: Callable[[ICLPrompt], int],
) -> tuple[list[ICLPrompt] | None, int, int]:
    """``(fitted, truncated, dropped)``: ``fitted`` is None when every prompt fits ``limit``
    with its ``reserve`` tokens (``what``: "answer" or "new", for the message), else the
    prompts to encode instead, each too long one without its oldest demonstrations
    (``policy="drop_demos"``; ``truncated`` prompts shortened, ``dropped`` demonstrations in
    all). Under ``"error"``, or for a prompt too long even without demonstrations, a
    ``ContextOverflowError`` names the prompt by its index in the call (``start`` + its row).
    ``prompt_ids``: each prompt's token ids; ``encoded_length``: the length of a shortened
    prompt."""
    rows = range(len(prompts))
    over = [] if limit is None else [i for i in rows if len(prompt_ids[i]) + reserve[i] > limit]
    if not over:
        return None, 0, 0
    assert limit is not None
    fitted = list(prompts)
    truncated = dropped_in_all = 0
    for i in over:
        prompt, length = prompts[i], len(prompt_ids[i])
        if policy == "error" or not prompt.demos:
            raise ContextOverflowError(
                f"prompt {start + i}: {length} tokens ({len(prompt.demos)} demonstrations) "
                f"+ {reserve[i]} {what} tokens exceed {model_name}'s context of {limit} "
                "tokens; "
                + (
                    "show fewer demonstrations, or let HFLVLM(..., "
                    "context_overflow='drop_demos') drop the oldest ones"
                    if prompt.demos
                    else "even without demonstrations"
                )
            )
        while prompt.demos and length + reserve[i] > limit:
            prompt = ICLPrompt(prompt.demos[1:], prompt.query)
            length = encoded_length(prompt)
        if length + reserve[i] > limit:
            raise ContextOverflowError(
                f"prompt {start + i}: {length} tokens + {reserve[i]} {what} tokens exceed "
                f"{model_name}'s context of {limit} tokens even without demonstrations"
            )
        dropped = len(prompts[i].demos) - len(prompt.demos)
        log.warning(
            "prompt %d: dropped its %d oldest of %d demonstrations to fit %s's context of "
            "%d tokens (%d -> %d tokens + %d %s tokens)",
            start + i, dropped, len(prompts[i].demos), model_name, limit,
            len(prompt_ids[i]), length, reserve[i], what,
        )  # fmt: skip
        truncated += 1
        dropped_in_all += dropped
        fitted[i] = prompt
    return fitted, truncated, dropped_in_all

"""The LVLM interface every backend implements: score answers, generate answers; and what
evaluation reads from a model beside them (its name, its context, how many prompts it cut).

Those facts have defaults here (``None``: the backend does not say), so a backend declares
only what it knows. ``WrappedLVLM`` is the base of a model that runs another one (an adapter
on a frozen base): it forwards the facts to ``self.base``, so a wrapped model reports its
base's context and truncation counts rather than nothing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from drum.lvlm.prompt import ICLPrompt


@dataclass(frozen=True)
class ScoreResult:
    """Log-likelihood of one answer given its prompt.

    ``sum = sum_t log p(a_t | prompt, a_<t)``; ``mean = sum / tokens`` (length-normalised).
    """

    sum: float
    mean: float
    tokens: int


class _ClassName:
    """The class's name until an instance sets its own ``name`` (a non-data descriptor: an
    instance attribute shadows it, as ``HFLVLM`` sets its model path)."""

    def __get__(self, instance: object, owner: type) -> str:
        return owner.__name__


class LVLM(ABC):
    """A vision-language model that reads interleaved in-context prompts.

    Beside ``score`` and ``generate``, evaluation records (``drum.eval.icl``):

    * ``name``: what the results call the model (default: the class name);
    * ``context_length``: the longest prompt in tokens (None: unknown);
    * ``context_overflow``: what happens to a longer prompt (``"error"``, ``"drop_demos"``;
      None: the backend does not say);
    * ``truncated_prompts`` / ``dropped_demos``: running counts of prompts shortened to fit
      the context and of the demonstrations dropped (None: the backend keeps no counts).
    """

    name: str = _ClassName()  # type: ignore[assignment]
    context_length: int | None = None
    context_overflow: str | None = None
    truncated_prompts: int | None = None
    dropped_demos: int | None = None

    @property
    @abstractmethod
    def fingerprint(self) -> str:
        """Changes whenever the model's outputs could change (feedback caches key on it)."""

    @abstractmethod
    def score(
        self,
        prompts: Sequence[ICLPrompt],
        answers: Sequence[str],
        batch_size: int = 32,
        progress: bool = False,
    ) -> list[ScoreResult]:
        """Log-likelihood of ``answers[i]`` as the reply to ``prompts[i]``."""

    @abstractmethod
    def generate(
        self,
        prompts: Sequence[ICLPrompt],
        max_new_tokens: int = 8,
        batch_size: int = 32,
        progress: bool = False,
    ) -> list[str]:
        """Greedy replies to ``prompts``."""


class WrappedLVLM(LVLM):
    """An LVLM that runs another, ``self.base`` (set by the subclass): what evaluation reads
    (``name``, ``context_length``, ``context_overflow``, ``truncated_prompts``,
    ``dropped_demos``) is the base's, since the base sees every prompt.

    Example::

        class Adapted(WrappedLVLM):
            def __init__(self, base: LVLM) -> None:
                self.base = base
            ...  # fingerprint, score, generate

        Adapted(HFLVLM(path)).context_length  # the HFLVLM's
    """

    base: LVLM

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.base.name

    @property
    def context_length(self) -> int | None:  # type: ignore[override]
        return self.base.context_length

    @property
    def context_overflow(self) -> str | None:  # type: ignore[override]
        return self.base.context_overflow

    @property
    def truncated_prompts(self) -> int | None:  # type: ignore[override]
        return self.base.truncated_prompts

    @property
    def dropped_demos(self) -> int | None:  # type: ignore[override]
        return self.base.dropped_demos

"""The LVLM interface every backend implements: score answers, generate answers."""

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


class LVLM(ABC):
    """A vision-language model that reads interleaved in-context prompts."""

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

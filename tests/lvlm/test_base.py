"""The ``LVLM`` interface's evaluation facts: defaults for a backend that says nothing, and
``WrappedLVLM`` forwarding its base's (as an adapter on a frozen base reports them)."""

from __future__ import annotations

from collections.abc import Sequence

from drum.lvlm.base import LVLM, ScoreResult, WrappedLVLM
from drum.lvlm.prompt import ICLPrompt
from drum.testing import FakeLVLM


class Wrapper(WrappedLVLM):
    """The thinnest wrapper: every call goes to the base, the fingerprint marks the wrap."""

    def __init__(self, base: LVLM) -> None:
        self.base = base

    @property
    def fingerprint(self) -> str:
        return self.base.fingerprint + "+wrapped"

    def score(
        self,
        prompts: Sequence[ICLPrompt],
        answers: Sequence[str],
        batch_size: int = 32,
        progress: bool = False,
    ) -> list[ScoreResult]:
        return self.base.score(prompts, answers, batch_size, progress)

    def generate(
        self,
        prompts: Sequence[ICLPrompt],
        max_new_tokens: int = 8,
        batch_size: int = 32,
        progress: bool = False,
    ) -> list[str]:
        return self.base.generate(prompts, max_new_tokens, batch_size, progress)


def test_a_backend_that_says_nothing_gets_the_defaults() -> None:
    fake = FakeLVLM()
    assert fake.name == "FakeLVLM"  # the class name, as results recorded it before
    assert (fake.context_length, fake.context_overflow) == (None, None)
    assert (fake.truncated_prompts, fake.dropped_demos) == (None, None)
    fake.name = "tiny"  # a backend sets its own (HFLVLM: its model path)
    assert fake.name == "tiny" and FakeLVLM().name == "FakeLVLM"


def test_a_wrapper_reports_its_bases_facts_as_they_change() -> None:
    base = FakeLVLM()
    base.name, base.context_length, base.context_overflow = "tiny", 512, "drop_demos"
    base.truncated_prompts, base.dropped_demos = 0, 0
    wrapped = Wrapper(base)
    assert (wrapped.name, wrapped.context_length, wrapped.context_overflow) == (
        "tiny",
        512,
        "drop_demos",
    )
    base.truncated_prompts, base.dropped_demos = 3, 7  # counts the base keeps while it runs
    assert (wrapped.truncated_prompts, wrapped.dropped_demos) == (3, 7)
    assert Wrapper(FakeLVLM()).name == "FakeLVLM"  # a wrapper's name is never its own class
    assert Wrapper(FakeLVLM()).truncated_prompts is None


def test_the_vpgc_adapter_is_a_wrapped_lvlm() -> None:
    from drum.adapters.vpgc.model import VPGCLVLM

    assert issubclass(VPGCLVLM, WrappedLVLM)

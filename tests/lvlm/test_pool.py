"""``GenerationPool``: ``generate`` over two local worker processes equals ``HFLVLM.generate``
(the same batches, one thread each); scoring and the facts stay the base's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from drum.lvlm.hf import HFLVLM
from drum.lvlm.pool import GenerationPool
from drum.lvlm.prompt import ICLPrompt


@pytest.mark.slow
def test_pool_generates_what_the_base_generates(
    build: Callable[[str], Any],
    batch: tuple[list[ICLPrompt], list[str]],
    interleaved: tuple[list[ICLPrompt], list[str]],
) -> None:
    base = HFLVLM(build("llava").path)
    prompts = (batch[0] + interleaved[0]) * 2  # 16 prompts: 6 batches of 3 (the last of 1)
    expected = base.generate(prompts, max_new_tokens=4, batch_size=3)
    with GenerationPool(base, workers=2) as pool:
        assert pool.fingerprint == base.fingerprint and pool.name == base.name
        # One batch: generated here, no worker started.
        assert pool.generate(prompts[:3], max_new_tokens=4, batch_size=3) == expected[:3]
        assert pool._executor is None
        assert pool.generate(prompts, max_new_tokens=4, batch_size=3) == expected
        assert pool._executor is not None
        assert pool.truncated_prompts == base.truncated_prompts == 0
        answers = [p.query.answer or "x" for p in prompts]
        assert pool.score(prompts, answers) == base.score(prompts, answers)
    assert pool._executor is None


def test_pool_takes_an_hflvlm_on_the_cpu(build: Callable[[str], Any]) -> None:
    base = HFLVLM(build("llava").path)
    with pytest.raises(ValueError, match="workers and threads"):
        GenerationPool(base, workers=0)
    with pytest.raises(ValueError, match="HFLVLM on the CPU"):
        GenerationPool(GenerationPool(base))  # type: ignore[arg-type]

"""Prompts longer than the LVLM's context: refused by default, or cut at turn boundaries.

The built-in LVLM (a tiny LLaVA) reads 512 positions; 40 of the tiny world's demonstrations
(about 15 tokens each) overflow it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from drum.builtin.assets import ASSETS_DIR
from drum.data import read_examples
from drum.data.example import Example
from drum.lvlm.context import ContextOverflowError
from drum.lvlm.hf import HFLVLM
from drum.lvlm.prompt import ICLPrompt, TextPart, Turn, build_prompt

LVLM_DIR = ASSETS_DIR / "lvlm"


@pytest.fixture(scope="module")
def refusing() -> HFLVLM:
    return HFLVLM(LVLM_DIR)


@pytest.fixture
def dropping() -> HFLVLM:
    return HFLVLM(LVLM_DIR, context_overflow="drop_demos")


@pytest.fixture(scope="module")
def pool(tiny_world: Path) -> list[Example]:
    return read_examples(tiny_world / "vqa" / "pool.jsonl")


def _length(lvlm: HFLVLM, prompt: ICLPrompt) -> int:
    return len(lvlm._encode([prompt])[0][0])


def _fitted(lvlm: HFLVLM, prompt: ICLPrompt, reserve: int) -> ICLPrompt:
    """By hand: the prompt without as few of its oldest demonstrations as make it fit."""
    assert lvlm.context_length is not None
    for first in range(len(prompt.demos) + 1):
        cut = ICLPrompt(prompt.demos[first:], prompt.query)
        if _length(lvlm, cut) + reserve <= lvlm.context_length:
            return cut
    raise AssertionError("no cut fits")


def test_the_context_length_comes_from_the_text_config(refusing: HFLVLM) -> None:
    assert refusing.context_length == 512
    assert refusing.context_overflow == "error"
    with pytest.raises(ValueError, match="context_overflow must be one of"):
        HFLVLM(LVLM_DIR, context_overflow="truncate_left")


def test_a_prompt_over_the_context_is_refused_by_default(
    refusing: HFLVLM, pool: list[Example]
) -> None:
    short, long = build_prompt(pool[:2], pool[50]), build_prompt(pool[:40], pool[50])
    assert _length(refusing, long) > 512
    message = r"prompt 1: \d+ tokens \(40 demonstrations\) \+ 1 answer tokens exceed .*512"
    with pytest.raises(ContextOverflowError, match=message):
        refusing.score([short, long], [pool[50].answer] * 2)
    with pytest.raises(ContextOverflowError, match=r"prompt 3: .* \+ 3 new tokens exceed"):
        refusing.generate([short, short, short, long], max_new_tokens=3, batch_size=2)


def test_drop_demos_drops_the_oldest_whole_demonstrations_and_counts_them(
    refusing: HFLVLM, dropping: HFLVLM, pool: list[Example], caplog: pytest.LogCaptureFixture
) -> None:
    query = pool[50]
    short, long = build_prompt(pool[:2], query), build_prompt(pool[:40], query)
    answer_tokens = len(refusing._answer_ids(query.answer))
    cut = _fitted(refusing, long, answer_tokens)
    assert 0 < len(cut.demos) < 40 and cut.demos == long.demos[40 - len(cut.demos) :]
    with caplog.at_level(logging.WARNING, logger="drum.lvlm.context"):
        short_score, long_score = dropping.score([short, long], [query.answer] * 2)
    assert dropping.truncated_prompts == 1 and dropping.dropped_demos == 40 - len(cut.demos)
    assert f"prompt 1: dropped its {40 - len(cut.demos)} oldest of 40" in caplog.text
    (expected,) = refusing.score([cut], [query.answer])
    assert long_score.sum == pytest.approx(expected.sum, abs=1e-4)
    # The short prompt, re-padded to the cut one's length, scores as it does on its own.
    assert short_score.sum == pytest.approx(refusing.score([short], [query.answer])[0].sum, 1e-4)
    # Generation reserves max_new_tokens: the cut keeps room for them.
    new_cut = _fitted(refusing, long, 8)
    assert dropping.generate([long], max_new_tokens=8) == refusing.generate([new_cut], 8)
    assert dropping.truncated_prompts == 2


def test_prompts_that_fit_run_exactly_as_before(dropping: HFLVLM, pool: list[Example]) -> None:
    # A fresh model for each policy: the image feature cache of a used one would hold
    # encodings computed in other batches.
    refusing = HFLVLM(LVLM_DIR)
    prompts = [build_prompt(pool[i : i + 8], pool[50 + i]) for i in range(3)]
    answers = [pool[50 + i].answer for i in range(3)]
    assert dropping.score(prompts, answers) == refusing.score(prompts, answers)
    assert dropping.generate(prompts, 3) == refusing.generate(prompts, 3)
    assert dropping.truncated_prompts == dropping.dropped_demos == 0


def test_a_query_over_the_context_on_its_own_is_refused_even_when_dropping(
    dropping: HFLVLM, pool: list[Example]
) -> None:
    words = TextPart(" ".join(["red"] * 600))
    prompt = ICLPrompt(build_prompt(pool[:2], pool[50]).demos, Turn((words,)))
    with pytest.raises(ContextOverflowError, match="even without demonstrations"):
        dropping.score([prompt], ["red"])

"""Shared demonstration prefixes (``drum.lvlm.prefix``): the prefix path scores what the
whole-prompt path scores (within 1e-4) on LLaVA, Qwen2-VL, Qwen2.5-VL, Qwen3-VL (its deepstack
features: each pass its own images') and the built-in LVLM, batched or one at a time, with
prefixes of different lengths and zero-shot prompts in one call; where it does not apply,
``score`` falls back to the whole-prompt path."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import drum
from drum.data import read_examples
from drum.lvlm.base import ScoreResult
from drum.lvlm.hf import HFLVLM
from drum.lvlm.prefix import (
    MAX_ROWS_PER_BATCH,
    _encode_window,
    _suffix_batches,
    common_prefix,
    image_safe,
    prefix_lengths,
    shares_prefixes,
)
from drum.lvlm.prompt import ICLPrompt, ImagePart, TextPart, Turn, build_prompt

ATOL = 1e-4
BUILTIN = Path(drum.__file__).parent / "assets" / "builtin" / "lvlm"
Prompts = tuple[list[ICLPrompt], list[str]]


def _close(actual: list[ScoreResult], expected: list[ScoreResult]) -> None:
    assert [r.tokens for r in actual] == [r.tokens for r in expected]
    for a, e in zip(actual, expected, strict=True):
        assert a.sum == pytest.approx(e.sum, abs=ATOL)
        assert a.mean == pytest.approx(e.mean, abs=ATOL)


@pytest.fixture(scope="module")
def feedback(tiny_world: Path) -> Prompts:
    """A feedback call's prompts, interleaved as a query-major call lists them: zero-shot
    prompts; a one-demo group, a two-demo group (a longer prefix) and a group whose demo has
    an image between texts; a demonstration only one prompt shows; the same prompt twice with
    different answers (the common prefix is all but its last token)."""
    pool = read_examples(tiny_world / "vqa" / "pool.jsonl")
    images = [example.image for example in pool[:4]]
    middle = ICLPrompt(
        (Turn((ImagePart(images[1]), TextPart("small"), ImagePart(images[0])), pool[2].answer),),
        Turn.of(pool[0].images, pool[0].text),
    ).demos
    prompts: list[ICLPrompt] = []
    answers: list[str] = []
    for number, query in enumerate(pool[10:16]):
        answer = " ".join([query.answer] * (1 + number % 3))
        rows = [build_prompt([], query), build_prompt([pool[0]], query)]
        if number < 3:
            rows.append(build_prompt(pool[1:3], query))
        if number >= 4:
            rows.append(ICLPrompt(middle, build_prompt([], query).query))
        if number == 5:
            rows += [build_prompt([pool[3]], query)] + [build_prompt([pool[4]], query)] * 2
        prompts += rows
        answers += [answer] * len(rows)
    answers[-1] = pool[0].answer  # the same prompt as the one before, another answer
    return prompts, answers


@pytest.fixture(scope="module")
def paths(build: Callable[[str], Any]) -> dict[str, Path]:
    return {
        "llava": build("llava").path,
        "qwen2_vl": build("qwen2_vl").path,
        "qwen2_5_vl": build("qwen2_5_vl").path,
        "qwen3_vl": build("qwen3_vl").path,
        "builtin": BUILTIN,
    }


@pytest.mark.parametrize("family", ["llava", "qwen2_vl", "qwen2_5_vl", "qwen3_vl", "builtin"])
def test_shared_prefixes_score_what_whole_prompts_score(
    family: str, paths: dict[str, Path], feedback: Prompts
) -> None:
    prompts, answers = feedback
    whole = HFLVLM(paths[family], share_prefixes=False)
    shared = HFLVLM(paths[family])
    assert shares_prefixes(shared) and not shares_prefixes(whole)
    expected = [whole.score([p], [a])[0] for p, a in zip(prompts, answers, strict=True)]
    _close(whole.score(prompts, answers, batch_size=4), expected)
    for batch_size in (1, 3, 64):
        _close(shared.score(prompts, answers, batch_size=batch_size), expected)
    # One at a time through the prefix path (no group: every prompt whole) and reversed.
    _close([shared.score([p], [a])[0] for p, a in zip(prompts, answers, strict=True)], expected)
    _close(shared.score(prompts[::-1], answers[::-1], batch_size=5), expected[::-1])


@pytest.mark.parametrize("family", ["llava", "qwen2_vl", "qwen2_5_vl", "qwen3_vl"])
def test_prefixes_of_different_lengths_run_once_each(
    family: str, paths: dict[str, Path], feedback: Prompts
) -> None:
    prompts, answers = feedback
    lvlm = HFLVLM(paths[family])
    window = _encode_window(lvlm, prompts, answers, 0)
    lengths = prefix_lengths(lvlm, prompts, window)
    groups: dict[tuple, set[int]] = {}
    for prompt, length in zip(prompts, lengths, strict=True):
        groups.setdefault(prompt.demos, set()).add(length)
    assert groups[()] == {0}  # zero-shot prompts have no prefix
    shared = {demos: lengths for demos, lengths in groups.items() if demos}
    # One length per demonstration set; the four sets shown more than once each share one of
    # its own, the set shown once has none.
    assert all(len(lengths) == 1 for lengths in shared.values())
    assert sorted(length for (length,) in shared.values())[0] == 0
    assert len({length for (length,) in shared.values() if length}) >= 2  # lengths differ
    assert len({tuple(window.ids[row][:n]) for row, n in enumerate(lengths) if n}) == 4
    for row, length in enumerate(lengths):
        assert length < len(window.ids[row])  # the last prompt token stays in the suffix
        first = next(i for i, p in enumerate(prompts) if p.demos == prompts[row].demos)
        assert window.ids[row][:length] == window.ids[first][:length]
    # One window: each distinct prefix runs once (one batch), then every suffix (one batch),
    # as wide as the longest suffix + answer.
    shapes: list[tuple[int, int]] = []
    handle = lvlm.model.register_forward_hook(
        lambda module, args, kwargs, output: shapes.append(tuple(kwargs["input_ids"].shape)),
        with_kwargs=True,
    )
    try:
        lvlm.score(prompts, answers, batch_size=64)
    finally:
        handle.remove()
    prefixes = {tuple(window.ids[row][:n]) for row, n in enumerate(lengths) if n}
    suffix = max(
        len(ids) - n + len(lvlm._answer_ids(a)) - 1
        for ids, n, a in zip(window.ids, lengths, answers, strict=True)
    )
    assert shapes == [(len(prefixes), max(len(p) for p in prefixes)), (len(prompts), suffix)]


def test_suffix_batches_hold_the_token_slots_of_whole_prompt_batches() -> None:
    assert MAX_ROWS_PER_BATCH == 2
    # Budget: batch_size x the longest whole prompt (10 slots); at most 2 x batch_size rows.
    assert _suffix_batches([5, 5, 5], [10, 10, 10], 1) == [[0, 1], [2]]
    assert _suffix_batches([6, 6], [10, 10], 1) == [[0], [1]]
    assert _suffix_batches([2, 9, 2, 2, 2], [10] * 5, 2) == [[0, 2, 3, 4], [1]]


def test_a_prefix_stops_before_an_image_it_would_split() -> None:
    image = 9
    ids = [1, image, image, image, 2, image, image, 3]
    assert image_safe(3, ids, [3, 2], image) == 1
    assert image_safe(4, ids, [3, 2], image) == 4
    assert image_safe(6, ids, [3, 2], image) == 5
    assert common_prefix([[1, 2, 3], [1, 2, 4], [1, 2]]) == 2


def test_different_images_behind_the_same_tokens_are_not_shared(
    paths: dict[str, Path], tiny_world: Path
) -> None:
    pool = read_examples(tiny_world / "vqa" / "pool.jsonl")
    # Same demonstration, then two queries whose tokens start alike (an image placeholder
    # each) but whose images differ: the prefix ends where the first query begins.
    prompts = [build_prompt([pool[0]], pool[10]), build_prompt([pool[0]], pool[11])]
    lvlm = HFLVLM(paths["builtin"])
    window = _encode_window(lvlm, prompts, [pool[10].answer, pool[11].answer], 0)
    (length, same) = prefix_lengths(lvlm, prompts, window)
    assert length == same
    demo_only = lvlm._encode_rows([build_prompt([], pool[10])])[0][0]
    query_start = len(window.ids[0]) - len(demo_only) + 1  # the query's ids follow the BOS
    assert length == query_start


@pytest.mark.parametrize("family", ["llava", "qwen2_vl", "qwen2_5_vl", "qwen3_vl"])
def test_demonstrations_that_differ_only_in_their_images_get_their_own_prefixes(
    family: str, paths: dict[str, Path], tiny_world: Path
) -> None:
    # The demo world repeats questions: two candidates with the same text and answer but
    # different images have the same token ids, not the same prefix.
    pool = read_examples(tiny_world / "vqa" / "pool.jsonl")
    twin = dataclasses.replace(pool[0], id="twin", images=pool[1].images)
    prompts = [build_prompt([demo], query) for demo in (pool[0], twin) for query in pool[10:12]]
    answers = [query.answer for _ in range(2) for query in pool[10:12]]
    whole = HFLVLM(paths[family], share_prefixes=False)
    expected = [whole.score([p], [a])[0] for p, a in zip(prompts, answers, strict=True)]
    assert abs(expected[0].sum - expected[2].sum) > 1e-3  # the images matter
    _close(HFLVLM(paths[family]).score(prompts, answers), expected)


@pytest.mark.parametrize("family", ["idefics3", "blip2"])
def test_unverified_families_fall_back(family: str, build: Callable[[str], Any]) -> None:
    assert not shares_prefixes(HFLVLM(build(family).path))


def test_hooks_and_bypassed_caches_fall_back_to_whole_prompts(
    paths: dict[str, Path], feedback: Prompts
) -> None:
    prompts, answers = feedback
    lvlm = HFLVLM(paths["llava"])
    expected = HFLVLM(paths["llava"], share_prefixes=False).score(prompts, answers)
    no_cache = HFLVLM(paths["llava"], image_feature_cache_size=0)
    assert not shares_prefixes(no_cache)
    _close(no_cache.score(prompts, answers), expected)
    with lvlm.feature_cache_bypassed():
        assert not shares_prefixes(lvlm)
        _close(lvlm.score(prompts, answers), expected)
    seen: list[int] = []

    def hook(hidden: torch.Tensor, visual: Any) -> torch.Tensor:
        seen.append(hidden.shape[0])
        return hidden

    with lvlm.layer_hook(0, hook):
        assert not shares_prefixes(lvlm)
        _close(lvlm.score(prompts, answers, batch_size=4), expected)
    assert sum(seen) == len(prompts)  # the hook saw every prompt whole, once
    assert shares_prefixes(lvlm)

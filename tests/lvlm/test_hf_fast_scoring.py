"""``HFLVLM``'s fast LLaVA scoring path: prompts encoded from cached image encodings (no
processor image work per batch), windows sorted by length, last answer token trimmed.

Every check compares with the processor path (``_encode``, or a model whose feature cache is
off), which ``test_hf_lvlm.py`` checks against by-hand scores.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from drum.data import read_examples
from drum.lvlm.base import ScoreResult
from drum.lvlm.bucketed import BUCKET_WINDOW
from drum.lvlm.hf import HFLVLM
from drum.lvlm.prompt import ICLPrompt, build_prompt

ATOL = 1e-4
Prompts = tuple[list[ICLPrompt], list[str]]


def _close(actual: list[ScoreResult], expected: list[ScoreResult]) -> None:
    assert [r.tokens for r in actual] == [r.tokens for r in expected]
    for a, e in zip(actual, expected, strict=True):
        assert a.sum == pytest.approx(e.sum, abs=ATOL)
        assert a.mean == pytest.approx(e.mean, abs=ATOL)


@pytest.fixture(scope="module")
def llava(build: Callable[[str], Any]) -> Path:
    return build("llava").path


@pytest.fixture(scope="module")
def mixed(tiny_world: Path) -> Prompts:
    """Prompts of 0, 1 and 2 demonstrations interleaved (so lengths alternate), with answers
    of 1 to 3 tokens: more than one window of batch size 2."""
    pool = read_examples(tiny_world / "vqa" / "pool.jsonl")
    prompts, answers = [], []
    for i in range(2 * BUCKET_WINDOW * 2 + 3):
        query = pool[i % len(pool)]
        demos = [pool[(i + 1 + k) % len(pool)] for k in range(i % 3)]
        prompts.append(build_prompt(demos, query))
        answers.append(" ".join([query.answer] * (1 + i % 3)))
    return prompts, answers


def test_encoding_from_features_equals_the_processors(
    llava: Path, batch: Prompts, interleaved: Prompts, mixed: Prompts
) -> None:
    lvlm = HFLVLM(llava)
    prompts = batch[0] + interleaved[0] + mixed[0]
    ids, vision, images, counts = lvlm._encode(prompts, count_image_tokens=True)
    fast_ids, fast_vision, fast_images, fast_counts = lvlm._encode_from_features(prompts, True)
    assert fast_ids == ids
    assert fast_counts == counts
    assert fast_images == images
    assert "pixel_values" not in fast_vision
    flat = [path for row in images for path in row]
    assert torch.equal(lvlm.feature_cache.pixel_values(flat), vision["pixel_values"])


def test_fast_scores_equal_the_processor_paths_in_order(llava: Path, mixed: Prompts) -> None:
    prompts, answers = mixed
    slow = HFLVLM(llava, image_feature_cache_size=0)  # the processor path, one at a time
    expected = [slow.score([p], [a])[0] for p, a in zip(prompts, answers, strict=True)]
    fast = HFLVLM(llava)
    for batch_size in (1, 2, 5, 64):
        _close(fast.score(prompts, answers, batch_size=batch_size), expected)
    bucketed = HFLVLM(llava, share_prefixes=False)  # the bucketed path, no shared prefixes
    _close(bucketed.score(prompts, answers, batch_size=2), expected)
    # A reversed call returns the reversed scores: results follow the prompts, not the batches.
    _close(fast.score(prompts[::-1], answers[::-1], batch_size=2), expected[::-1])
    with fast.feature_cache_bypassed():
        _close(fast.score(prompts, answers, batch_size=2), expected)


def test_batches_are_cut_by_length_within_a_window(llava: Path, mixed: Prompts) -> None:
    prompts, answers = mixed
    lvlm = HFLVLM(llava, share_prefixes=False)  # the bucketed path (drum.lvlm.prefix aside)
    widths: list[int] = []
    handle = lvlm.model.register_forward_hook(
        lambda module, args, kwargs, output: widths.append(int(kwargs["input_ids"].shape[1])),
        with_kwargs=True,
    )
    try:
        lvlm.score(prompts, answers, batch_size=2)
    finally:
        handle.remove()
    ids = lvlm._encode(prompts)[0]
    answer_ids = [lvlm._answer_ids(a) for a in answers]
    # Each window's rows sorted by length, in pairs; the last answer token is left out.
    expected: list[int] = []
    window = 2 * BUCKET_WINDOW
    for first in range(0, len(prompts), window):
        lengths = sorted(
            len(ids[i]) + len(answer_ids[i]) - 1
            for i in range(first, min(first + window, len(prompts)))
        )
        expected += [max(lengths[k : k + 2]) for k in range(0, len(lengths), 2)]
    assert widths == expected


def test_each_distinct_image_is_encoded_once(llava: Path, mixed: Prompts) -> None:
    prompts, answers = mixed
    lvlm = HFLVLM(llava)
    encoded: list[int] = []
    lvlm.model.model.vision_tower.register_forward_hook(
        lambda module, args, output: encoded.append(int(args[0].shape[0]))
    )
    lvlm.score(prompts, answers, batch_size=2)
    assert sum(encoded) == len({path for prompt in prompts for path in prompt.images})
    assert len(encoded) <= -(-len(prompts) // (2 * BUCKET_WINDOW))  # one call per window
    encoded.clear()
    lvlm.score(prompts, answers, batch_size=2)
    assert not encoded
    # Cleared, the cache encodes every image again.
    lvlm.feature_cache.clear()
    assert len(lvlm.feature_cache) == 0
    lvlm.score(prompts, answers, batch_size=2)
    assert sum(encoded) == len({path for prompt in prompts for path in prompt.images})


def test_a_rewritten_image_file_is_encoded_again(
    llava: Path, tiny_world: Path, tmp_path: Path
) -> None:
    pool = read_examples(tiny_world / "vqa" / "pool.jsonl")
    image = tmp_path / "image.png"
    shutil.copyfile(pool[0].images[0], image)
    query = replace(pool[0], images=(image,))
    prompt = build_prompt([], query)
    lvlm = HFLVLM(llava)
    before = lvlm.score([prompt], [query.answer])
    # Other content (a different size, so the size/mtime stamp changes whatever the clock).
    Image.new("RGB", (48, 40), (250, 10, 10)).save(image)
    after = lvlm.score([prompt], [query.answer])
    _close(after, HFLVLM(llava, image_feature_cache_size=0).score([prompt], [query.answer]))
    assert after != before

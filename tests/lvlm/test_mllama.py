"""Mllama through ``MllamaInterleavedProcessor``: the same ids, vision inputs and
cross-attention mask as ``MllamaProcessor`` itself builds (tiled images included); the mask
re-derived from re-padded ids; and why ``HFLVLM`` batches Mllama by image count (its imageless
tokens see the batch's padding images)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from drum.data.images import load_image
from drum.lvlm.hf import HFLVLM
from drum.lvlm.mllama_processor import MllamaInterleavedProcessor, image_spans
from drum.lvlm.prompt import ICLPrompt, ImagePart, TextPart, Turn

Prompts = tuple[list[ICLPrompt], list[str]]


@pytest.fixture(scope="module")
def mllama(build: Callable[[str], Any]) -> HFLVLM:
    return HFLVLM(build("mllama").path)


def test_image_spans_follow_mllamas_rule() -> None:
    # Token 9 is the image: one image sees to the end; each image up to the next; adjacent
    # images all to the end of the text after them.
    assert image_spans([1, 9, 2, 3], 9) == [(1, 4)]
    assert image_spans([1, 9, 2, 9, 3, 3], 9) == [(1, 3), (3, 6)]
    assert image_spans([9, 9, 2, 9, 3], 9) == [(0, 3), (1, 3), (3, 5)]
    assert image_spans([1, 2], 9) == []


@pytest.fixture(scope="module")
def wide(tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 64 x 32 image: two tiles (the others are one)."""
    path = tmp_path_factory.mktemp("mllama-images") / "wide.png"
    from drum.data import read_examples

    pool = read_examples(tiny_world / "vqa" / "pool.jsonl")
    Image.open(pool[0].image).convert("RGB").resize((64, 32)).save(path)
    return path


def test_inputs_equal_mllama_processors(mllama: HFLVLM, interleaved: Prompts, wide: Path) -> None:
    from transformers import MllamaProcessor

    processor = mllama.processor
    assert isinstance(processor, MllamaInterleavedProcessor)
    own = MllamaProcessor(processor.image_processor, processor.tokenizer)
    two, three, across = interleaved[0]
    tiled = ICLPrompt((), Turn((TextPart("one"), ImagePart(wide), *two.query.parts[2:])))
    prompts = [two, three, across, tiled]
    texts = [mllama.render(p) for p in prompts]
    images = [[load_image(path) for path in p.images] for p in prompts]
    expected = own(text=texts, images=images, return_tensors="pt", padding=True)
    ours = processor(texts, images, return_tensors="pt")
    assert set(ours) == set(expected)
    for key in expected:
        assert torch.equal(ours[key], expected[key]), key
    assert int(ours["aspect_ratio_mask"][3, 0].sum()) == 2  # the wide image's two tiles
    # Re-derived from ids padded on the other side (generation pads on the left).
    ids, _, _, counts = mllama._encode(prompts, count_image_tokens=True)
    assert counts == [[1] * len(p.images) for p in prompts]
    batch = mllama._padded(ids, [len(i) for i in ids], None, True, dict(ours))
    mask = batch.token_types["cross_attention_mask"]
    for row, row_ids in enumerate(ids):
        pad = batch.input_ids.shape[1] - len(row_ids)
        assert mask[row, :pad].sum() == 0
        assert torch.equal(mask[row, pad:], expected["cross_attention_mask"][row, : len(row_ids)])


def test_batches_are_run_per_image_count(mllama: HFLVLM, batch: Prompts) -> None:
    # The 1-image prompt scored with a 3-image one in one pass: its BOS, before its image,
    # sees no image and so attends to all of its row's vision tokens, the two padding images'
    # included, which moves its score; HFLVLM's per-image-count passes give the alone score.
    prompts, answers = [batch[0][1], batch[0][0]], [batch[1][1], batch[1][0]]
    assert [len(p.images) for p in prompts] == [1, 3]
    alone = mllama.score(prompts[:1], answers[:1])[0].sum
    assert mllama.score(prompts, answers)[0].sum == alone
    mixed = mllama.score_inputs(prompts, [mllama._answer_ids(a) for a in answers])
    assert mixed.extra["pixel_values"].shape[1] == 3  # two padding images in row 0
    with torch.inference_mode():
        [mixed_score, _] = mllama._score_from_inputs(mixed)
    assert abs(mixed_score.sum - alone) > 1e-5

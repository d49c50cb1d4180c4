"""IDEFICS (v1) through ``IdeficsInterleavedProcessor``: the same ids, pixel values and
cross-attention mask as ``IdeficsProcessor`` itself builds from the same interleaved prompt;
the mask re-derived from re-padded ids; images reach the scores only through cross-attention
(the ``<image>`` token is the image's whole span in the sequence)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
import torch

from drum.data.images import load_image
from drum.lvlm.hf import HFLVLM
from drum.lvlm.idefics_processor import IdeficsInterleavedProcessor
from drum.lvlm.prompt import ICLPrompt, ImagePart, TextPart

Prompts = tuple[list[ICLPrompt], list[str]]


@pytest.fixture(scope="module")
def idefics(build: Callable[[str], Any]) -> HFLVLM:
    return HFLVLM(build("idefics").path)


def _as_list(prompt: ICLPrompt) -> list[Any]:
    """``prompt`` as ``IdeficsProcessor`` takes it: strings and images in order, what the
    tiny chat template writes around them folded into the strings."""
    items: list[Any] = []

    def text(words: str) -> None:
        if items and isinstance(items[-1], str):
            items[-1] = f"{items[-1]} {words}"
        else:
            items.append(words)

    for turn in (*prompt.demos, prompt.query):
        for part in turn.parts:
            if isinstance(part, ImagePart):
                items.append(load_image(part.path))
            else:
                assert isinstance(part, TextPart)
                text(part.text)
        text("answer" if turn.answer is None else f"answer {turn.answer} [EOS]")
    return items


def test_inputs_equal_idefics_processors(idefics: HFLVLM, interleaved: Prompts) -> None:
    from transformers import IdeficsProcessor

    assert isinstance(idefics.processor, IdeficsInterleavedProcessor)
    own = IdeficsProcessor(idefics.processor.image_processor, idefics.tokenizer, image_size=32)
    # Two images apart, and three across a demonstration (whose answer ends in an EOS) and
    # the query. (Adjacent images: IdeficsProcessor shares one fake token between them, the
    # chat template writes two.)
    two, _, across = interleaved[0]
    for prompt in (two, across):
        expected = own(text=[_as_list(prompt)], return_tensors="pt")
        ids, vision, _, counts = idefics._encode([prompt], count_image_tokens=True)
        assert ids[0] == expected["input_ids"][0].tolist()
        assert torch.equal(vision["pixel_values"], expected["pixel_values"])
        derived = idefics.processor.token_inputs(torch.tensor(ids))["image_attention_mask"]
        assert torch.equal(derived, expected["image_attention_mask"])
        assert counts == [[1] * len(prompt.images)]
    # After the demonstration's EOS, "large" attends to no image until the query's.
    mask = idefics.processor.token_inputs(torch.tensor(idefics._encode([across])[0]))
    words = idefics.tokenizer.convert_ids_to_tokens(idefics._encode([across])[0][0])
    large = words.index("large")
    assert mask["image_attention_mask"][0, large].sum() == 0
    assert mask["image_attention_mask"][0, large - 1].tolist() == [0, 1, 0]  # the EOS


def test_the_mask_follows_left_padding(idefics: HFLVLM, interleaved: Prompts) -> None:
    prompts = interleaved[0]
    ids = idefics._encode(prompts)[0]
    batch = idefics._padded(ids, [len(i) for i in ids], None, left=True)
    mask = batch.token_types["image_attention_mask"]
    assert mask.shape == (*batch.input_ids.shape, 3)
    for row, row_ids in enumerate(ids):
        alone = idefics.processor.token_inputs(torch.tensor([row_ids]))["image_attention_mask"]
        pad = batch.input_ids.shape[1] - len(row_ids)
        assert mask[row, :pad].sum() == 0
        assert torch.equal(mask[row, pad:, : alone.shape[2]], alone[0])


def test_images_reach_the_scores_through_cross_attention_alone(
    idefics: HFLVLM, interleaved: Prompts
) -> None:
    # The first prompt with its two images swapped: different scores while the gated
    # cross-attention layers are open, the same scores once their gates are closed.
    (two, *_), (answer, *_) = interleaved
    one, first, middle, second, question = two.query.parts
    swapped = replace(two, query=replace(two.query, parts=(one, second, middle, first, question)))
    prompts, answers = [two, swapped], [answer, answer]
    opened = idefics.score(prompts, answers)
    assert abs(opened[0].sum - opened[1].sum) > 1e-5
    gates = [
        gate
        for layer in idefics.model.model.gated_cross_attn_layers
        for gate in (layer.alpha_cross_attn, layer.alpha_dense)
    ]
    saved = [gate.detach().clone() for gate in gates]
    try:
        with torch.no_grad():
            for gate in gates:
                gate.zero_()
        closed = idefics.score(prompts, answers)
    finally:
        with torch.no_grad():
            for gate, value in zip(gates, saved, strict=True):
                gate.copy_(value)
    assert closed[0].sum == pytest.approx(closed[1].sum, abs=1e-6)
    assert abs(closed[0].sum - opened[0].sum) > 1e-5

"""Layer hooks on every tiny family: they act in scoring and in generation's prefill (never in
decode steps), see one span per image covering exactly its visual tokens under right and
left padding, change nothing when they add nothing, and change scores and replies when they
shift the visual tokens."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from drum.lvlm.hf import HFLVLM
from drum.lvlm.hooks import VisualPositions, decoder_layers
from drum.lvlm.prompt import ICLPrompt

Prompts = tuple[list[ICLPrompt], list[str]]


def _middle(lvlm: HFLVLM) -> int:
    # The output of layer L/2 - 1, what enters layer L/2 (VPG-C's insertion point): layer 0 of
    # these 2-layer models. Not the last layer: under causal attention a hook there could not
    # reach the logits of later positions.
    return len(decoder_layers(lvlm.model)) // 2 - 1


def _zero(hidden: torch.Tensor, visual: VisualPositions) -> torch.Tensor:
    return hidden + torch.zeros_like(hidden)


def _shift(hidden: torch.Tensor, visual: VisualPositions) -> torch.Tensor:
    return hidden + 100.0 * visual.mask.unsqueeze(-1).to(hidden.dtype)


def _all(batch: Prompts, interleaved: Prompts) -> Prompts:
    return batch[0] + interleaved[0], batch[1] + interleaved[1]


def test_a_hook_that_adds_zero_changes_nothing(
    lvlm: HFLVLM, batch: Prompts, interleaved: Prompts
) -> None:
    prompts, answers = _all(batch, interleaved)
    # A hooked score runs whole prompts (drum.lvlm.prefix), so the bit-for-bit reference does
    # too: the shared-prefix path equals it up to float rounding only (Qwen3-VL's by ~1e-6).
    sharing, lvlm.share_prefixes = lvlm.share_prefixes, False
    try:
        scores = lvlm.score(prompts, answers)
    finally:
        lvlm.share_prefixes = sharing
    replies = lvlm.generate(prompts, max_new_tokens=4)
    with lvlm.layer_hook(_middle(lvlm), _zero):
        assert lvlm.score(prompts, answers) == scores
        assert lvlm.generate(prompts, max_new_tokens=4) == replies


def test_shifting_the_visual_tokens_changes_scores_and_replies(
    lvlm: HFLVLM, batch: Prompts, interleaved: Prompts
) -> None:
    prompts, answers = _all(batch, interleaved)
    scores = lvlm.score(prompts, answers)
    replies = lvlm.generate(prompts, max_new_tokens=4)
    with lvlm.layer_hook(_middle(lvlm), _shift):
        shifted = lvlm.score(prompts, answers)
        shifted_replies = lvlm.generate(prompts, max_new_tokens=4)
    # The same batch, so without the hook's effect the sums would be bit-identical; tiny random
    # models move little (Idefics3's by ~3e-4), far above float noise all the same.
    assert all(abs(s.sum - b.sum) > 1e-5 for s, b in zip(shifted, scores, strict=True))
    assert shifted_replies != replies
    # The hook is removed on exit.
    assert lvlm.score(prompts, answers) == scores
    assert lvlm.generate(prompts, max_new_tokens=4) == replies


def _passes(lvlm: HFLVLM, prompts: list[ICLPrompt]) -> list[list[int]]:
    """The rows of each forward pass ``HFLVLM`` runs for ``prompts`` in one batch: all of
    them, or (``batch_by_image_count``: Mllama) one pass per image count, in order of first
    appearance."""
    if not lvlm.family.batch_by_image_count:
        return [list(range(len(prompts)))]
    counts = list(dict.fromkeys(len(p.images) for p in prompts))
    return [[i for i, p in enumerate(prompts) if len(p.images) == n] for n in counts]


def _expected_spans(lvlm: HFLVLM, ids: list[int], start: int, n: int) -> list[tuple[int, int]]:
    """By hand: the row's image tokens, each consecutive ``n`` of them one image (every image
    of a row of these tiny models is ``n`` tokens), shifted by the row's left padding
    ``start``; an image's span runs from its first image token to its last."""
    positions = [start + i for i, token in enumerate(ids) if token == lvlm.image_token_id]
    chunks = [positions[k : k + n] for k in range(0, len(positions), n)]
    for chunk in chunks:  # contiguous, but for the row breaks within a Pixtral image (Mistral3)
        gaps = [ids[i - start] for i in range(chunk[0], chunk[-1]) if i not in chunk]
        assert set(lvlm.tokenizer.convert_ids_to_tokens(gaps)) <= {"[IMG_BREAK]"}
    return [(chunk[0], chunk[-1] + 1) for chunk in chunks]


def _check(
    lvlm: HFLVLM, tiny: Any, prompts: list[ICLPrompt], visual: VisualPositions, left: bool
) -> None:
    ids = lvlm._encode(prompts)[0]
    length = visual.mask.shape[1]
    image = {lvlm.image_token_id}
    for row, (prompt, row_ids) in enumerate(zip(prompts, ids, strict=True)):
        start = length - len(row_ids) if left else 0
        spans = visual.spans[row]
        assert len(spans) == len(prompt.images)
        n = tiny.visual_tokens_per_image
        if len(prompt.images) == 1 and tiny.lone_image_tokens is not None:
            n = tiny.lone_image_tokens  # LLaVA-OneVision: a lone image's anyres tiles
        assert spans == _expected_spans(lvlm, row_ids, start, n)
        covered = [
            i for begin, end in spans for i in range(begin, end) if row_ids[i - start] in image
        ]
        assert visual.mask[row].nonzero().flatten().tolist() == covered
        assert int(visual.last[row]) == start + len(row_ids) - 1


def test_spans_are_one_per_image_under_right_and_left_padding(
    tiny: Any, lvlm: HFLVLM, batch: Prompts, interleaved: Prompts
) -> None:
    # The 3-image interleaved prompt (two of its images adjacent), a 3-image prompt across
    # turns and a shorter 1-image one, so that rows are padded.
    prompts = [interleaved[0][1], batch[0][0], batch[0][1]]
    answers = [interleaved[1][1], batch[1][0], batch[1][1]]
    assert [len(p.images) for p in prompts] == [3, 3, 1]
    seen: list[tuple[int, VisualPositions]] = []

    def record(hidden: torch.Tensor, visual: VisualPositions) -> torch.Tensor:
        seen.append((hidden.shape[1], visual))
        return hidden

    with lvlm.layer_hook(_middle(lvlm), record):
        lvlm.score(prompts, answers)
        lvlm.generate(prompts, max_new_tokens=3)
    # One pass per batch (Mllama: per image count; the two 3-image rows are still padded).
    groups = _passes(lvlm, prompts)
    assert len(seen) == 2 * len(groups)
    for rows, (score_length, scored), (generate_length, generated) in zip(
        groups, seen[: len(groups)], seen[len(groups) :], strict=True
    ):
        chunk = [prompts[i] for i in rows]
        assert score_length == scored.mask.shape[1]
        assert generate_length == generated.mask.shape[1]
        _check(lvlm, tiny, chunk, scored, left=False)  # scoring pads on the right
        _check(lvlm, tiny, chunk, generated, left=True)  # generation on the left
        assert generated.last.tolist() == [generate_length - 1] * len(chunk)


def test_decode_steps_are_not_hooked(lvlm: HFLVLM, interleaved: Prompts) -> None:
    prompts, _ = interleaved
    layer_calls: list[int] = []
    hooked: list[int] = []

    def record(hidden: torch.Tensor, visual: VisualPositions) -> torch.Tensor:
        hooked.append(hidden.shape[1])
        return hidden

    layer = decoder_layers(lvlm.model)[_middle(lvlm)]
    handle = layer.register_forward_hook(lambda module, args, output: layer_calls.append(1))
    try:
        with lvlm.layer_hook(_middle(lvlm), record):
            lvlm.generate(prompts, max_new_tokens=4)
    finally:
        handle.remove()
    assert len(layer_calls) > 1  # the prefill, then decode steps
    # The prefill alone, over the whole padded prompt (of each batch run: _passes).
    assert hooked == [
        max(len(ids) for ids in lvlm._encode([prompts[i] for i in rows])[0])
        for rows in _passes(lvlm, prompts)
    ]


def test_a_hooked_layer_run_outside_hflvlm_is_an_error(lvlm: HFLVLM) -> None:
    ids = torch.tensor([[lvlm.tokenizer.bos_token_id]])
    # BLIP-2's forward needs images: its language model alone runs the hooked layer.
    model = lvlm.model.language_model if lvlm.model_type == "blip-2" else lvlm.model
    # IDEFICS's forward needs an image too: a blank one, which no token attends to.
    image = {
        "pixel_values": torch.zeros(1, 1, 3, 32, 32),
        "image_attention_mask": ids[..., None] * 0,
    }
    extra = image if lvlm.model_type == "idefics" else {}
    with lvlm.layer_hook(_middle(lvlm), _zero), pytest.raises(RuntimeError, match="positions"):
        model(input_ids=ids, attention_mask=torch.ones_like(ids), **extra)

"""``HFLVLM`` on every tiny random family of ``tiny_lvlms.BUILDERS``, loaded by path.

Each family is built once per session (``tiny_lvlms.py``, ``conftest.py``) and checked for:
scores equal to a by-hand sum over one plain forward of the unpadded prompt + answer; batched
scoring and generation equal to one-at-a-time, for images-then-text prompts and for
interleaved ones (2 and 3 images between text); interleaved prompts rendered with each image's
placeholder between the right text parts; and, for LLaVA, the image feature cache (scoring and
generation). Layer hooks are tested in ``test_hooks.py``; what only some families do (Gemma 3's
pan-and-scan, LLaVA-OneVision's anyres, Idefics2's image splitting) in ``test_families_a.py``.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from drum.data.images import load_image
from drum.lvlm.base import ScoreResult
from drum.lvlm.hf import HFLVLM, Qwen2VLImageOnlyProcessor
from drum.lvlm.prompt import ICLPrompt

QWEN_FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")
ATOL = 1e-4


def _reference_inputs(lvlm: HFLVLM, prompt: ICLPrompt) -> dict[str, torch.Tensor]:
    """The unpadded model inputs of one prompt, without going through ``HFLVLM``'s encoding."""
    text = lvlm.processor.apply_chat_template(
        prompt.to_messages(), add_generation_prompt=True, tokenize=False
    )
    images = [load_image(path) for path in prompt.images]
    if lvlm.model_type not in QWEN_FAMILIES:
        inputs = lvlm.processor(text=[text], images=[images], return_tensors="pt")
        return {k: v for k, v in inputs.items() if k != "attention_mask"}
    # Qwen2-VL by hand: each <|image_pad|> becomes one token per merged block of patches.
    vision = lvlm.processor.image_processor(images=images, return_tensors="pt")
    merge = lvlm.model.config.vision_config.spatial_merge_size
    counts = (vision["image_grid_thw"].prod(-1) // merge**2).tolist()
    pieces = text.split("<|image_pad|>")
    expanded = pieces[0] + "".join(
        "<|image_pad|>" * count + piece for count, piece in zip(counts, pieces[1:], strict=True)
    )
    ids = lvlm.tokenizer([expanded], return_tensors="pt")["input_ids"]
    return {"input_ids": ids, **vision}


def _reference_score(lvlm: HFLVLM, prompt: ICLPrompt, answer: str) -> float:
    """``sum_t log p(a_t | prompt, a_<t)`` from the model's plain forward over prompt + answer."""
    inputs = _reference_inputs(lvlm, prompt)
    prompt_ids = inputs.pop("input_ids")[0].tolist()
    answer_ids = lvlm.tokenizer(answer, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt_ids + answer_ids])
    # The per-token image mask, over prompt + answer: Qwen's M-RoPE, Gemma 3's bidirectional
    # attention within each image.
    if lvlm.model_type in QWEN_FAMILIES:
        inputs["mm_token_type_ids"] = (ids == lvlm.model.config.image_token_id).long()
    if hasattr(lvlm.processor, "token_inputs"):  # cross-attention masks, over prompt + answer
        inputs.update(lvlm.processor.token_inputs(ids, inputs))
    if "token_type_ids" in inputs:
        inputs["token_type_ids"] = (ids == lvlm.model.config.image_token_id).long()
    with torch.no_grad():
        logits = lvlm.model(input_ids=ids, attention_mask=torch.ones_like(ids), **inputs).logits
    log_probs = logits[0].float().log_softmax(-1)
    start = len(prompt_ids) - 1  # logits at position i predict token i + 1
    return sum(float(log_probs[start + i, token]) for i, token in enumerate(answer_ids))


def _assert_scores_close(actual: list[ScoreResult], expected: list[ScoreResult]) -> None:
    assert [r.tokens for r in actual] == [r.tokens for r in expected]
    for a, e in zip(actual, expected, strict=True):
        assert a.sum == pytest.approx(e.sum, abs=ATOL)
        assert a.mean == pytest.approx(e.mean, abs=ATOL)


def test_loads_the_family_by_path(tiny: Any, lvlm: HFLVLM) -> None:
    assert lvlm.model_type == tiny.model_type
    assert lvlm.fingerprint.startswith(f"{tiny.model_type}-")
    if tiny.model_type in QWEN_FAMILIES and importlib.util.find_spec("torchvision") is None:
        assert isinstance(lvlm.processor, Qwen2VLImageOnlyProcessor)


def test_prompt_plus_answer_ids_render_the_finished_conversation(
    lvlm: HFLVLM, batch: tuple[list[ICLPrompt], list[str]]
) -> None:
    # What scoring relies on: the answer's ids appended to the rendered prompt are how the chat
    # template renders the conversation with that answer as the final assistant turn.
    prompts, answers = batch
    for prompt, answer in zip(prompts, answers, strict=True):
        finished = [
            *prompt.to_messages(),
            {"role": "assistant", "content": [{"type": "text", "text": answer}]},
        ]
        full = lvlm.processor.apply_chat_template(finished, tokenize=False)
        ids = lvlm.tokenizer(lvlm.render(prompt), add_special_tokens=False)["input_ids"]
        answer_ids = lvlm.tokenizer(answer, add_special_tokens=False)["input_ids"]
        full_ids = lvlm.tokenizer(full, add_special_tokens=False)["input_ids"]
        assert full_ids == [*ids, *answer_ids, lvlm.tokenizer.eos_token_id]


def test_score_equals_sum_of_token_log_probs_by_hand(
    lvlm: HFLVLM, batch: tuple[list[ICLPrompt], list[str]]
) -> None:
    prompts, answers = batch
    # The 3-token answer after the 2-demo prompt: three images and three answer positions.
    prompt, answer = prompts[0], "red blue green"
    (result,) = lvlm.score([prompt], [answer])
    expected = _reference_score(lvlm, prompt, answer)
    assert result.tokens == 3
    assert result.sum == pytest.approx(expected, abs=ATOL)
    assert result.mean == pytest.approx(expected / 3, abs=ATOL)


def test_batched_score_equals_one_at_a_time(
    lvlm: HFLVLM, batch: tuple[list[ICLPrompt], list[str]]
) -> None:
    prompts, answers = batch
    single = [lvlm.score([p], [a])[0] for p, a in zip(prompts, answers, strict=True)]
    assert [r.tokens for r in single] == [1, 2, 3]
    _assert_scores_close(lvlm.score(prompts, answers), single)
    _assert_scores_close(lvlm.score(prompts, answers, batch_size=2), single)
    assert all(r.sum < 0 for r in single)


def test_answer_loss_is_the_mean_negative_log_prob_that_score_sums(
    lvlm: HFLVLM, batch: tuple[list[ICLPrompt], list[str]]
) -> None:
    prompts, answers = batch
    scores = lvlm.score(prompts, answers)
    expected = -sum(r.sum for r in scores) / sum(r.tokens for r in scores)
    loss = lvlm.answer_loss(prompts, answers)
    assert loss.item() == pytest.approx(expected, abs=ATOL)
    # With an EOS after each answer: one more target per row, a different mean.
    assert lvlm.answer_loss(prompts, answers, add_eos=True).item() != pytest.approx(loss.item())
    with pytest.raises(ValueError, match="3 prompts but 2 answers"):
        lvlm.answer_loss(prompts, answers[:2])
    with torch.inference_mode(), pytest.raises(RuntimeError, match="inference_mode"):
        lvlm.answer_loss(prompts, answers)


def test_batched_generation_equals_one_at_a_time(
    lvlm: HFLVLM, batch: tuple[list[ICLPrompt], list[str]]
) -> None:
    prompts, _ = batch
    replies = lvlm.generate(prompts, max_new_tokens=4)
    assert len(replies) == len(prompts)
    assert all(isinstance(reply, str) for reply in replies)
    assert replies == [lvlm.generate([p], max_new_tokens=4)[0] for p in prompts]


def test_interleaved_prompts_render_images_between_their_text(
    tiny: Any, lvlm: HFLVLM, interleaved: tuple[list[ICLPrompt], list[str]]
) -> None:
    (two, three, across), _ = interleaved
    image = tiny.placeholder
    texts = [turn.parts[-1].text for turn in (two.query, three.query, across.query)]
    assert lvlm.render(two) == f"[BOS] one {image} two {image} {texts[0]} answer"
    assert lvlm.render(three) == f"[BOS] one {image} two {image} {image} {texts[1]} answer"
    demo = across.demos[0]
    assert lvlm.render(across) == (
        f"[BOS] {image} small {image} answer {demo.answer} [EOS] large {image} {texts[2]} answer"
    )
    # After expansion: each image's run of visual tokens, in order, between the text tokens.
    ids = lvlm._encode([two])[0][0]
    words = lvlm.tokenizer.convert_ids_to_tokens(ids)
    one, second = words.index("one"), words.index("two")
    visual = [i for i, token in enumerate(ids) if token == lvlm.image_token_id]
    n = tiny.visual_tokens_per_image
    assert len(visual) == 2 * n
    assert one < visual[0] and visual[n - 1] < second < visual[n]


def test_interleaved_score_equals_sum_of_token_log_probs_by_hand(
    lvlm: HFLVLM, interleaved: tuple[list[ICLPrompt], list[str]]
) -> None:
    prompts, answers = interleaved
    for prompt, answer, result in zip(prompts, answers, lvlm.score(prompts, answers), strict=True):
        assert result.sum == pytest.approx(_reference_score(lvlm, prompt, answer), abs=ATOL)


def test_interleaved_batched_equals_one_at_a_time(
    lvlm: HFLVLM, interleaved: tuple[list[ICLPrompt], list[str]]
) -> None:
    prompts, answers = interleaved
    single = [lvlm.score([p], [a])[0] for p, a in zip(prompts, answers, strict=True)]
    assert [r.tokens for r in single] == [2, 1, 3]
    _assert_scores_close(lvlm.score(prompts, answers), single)
    replies = lvlm.generate(prompts, max_new_tokens=4)
    assert replies == [lvlm.generate([p], max_new_tokens=4)[0] for p in prompts]


@pytest.fixture()
def vision_tower_calls(build: Callable[[str], Any]) -> Iterator[tuple[HFLVLM, list[int]]]:
    """A fresh LLaVA ``HFLVLM`` (empty feature cache) and a counter of vision tower calls."""
    lvlm = HFLVLM(build("llava").path)
    calls: list[int] = []
    handle = lvlm.model.model.vision_tower.register_forward_hook(
        lambda module, args, output: calls.append(1)
    )
    yield lvlm, calls
    handle.remove()


def test_llava_image_features_are_cached(
    vision_tower_calls: tuple[HFLVLM, list[int]], batch: tuple[list[ICLPrompt], list[str]]
) -> None:
    lvlm, calls = vision_tower_calls
    prompts, answers = batch
    first = lvlm.score(prompts, answers)
    assert calls
    calls.clear()
    assert lvlm.score(prompts, answers) == first
    assert not calls
    assert len(lvlm.feature_cache) == len({p for prompt in prompts for p in prompt.images})


def test_llava_generation_reads_the_feature_cache(
    vision_tower_calls: tuple[HFLVLM, list[int]],
    batch: tuple[list[ICLPrompt], list[str]],
    interleaved: tuple[list[ICLPrompt], list[str]],
) -> None:
    # Generation takes its image encodings from the cache (no vision tower on a second call)
    # and replies exactly as with the processor's pixel values (the cache bypassed).
    lvlm, calls = vision_tower_calls
    prompts = batch[0] + interleaved[0]
    with lvlm.feature_cache_bypassed():
        expected = lvlm.generate(prompts, max_new_tokens=4)
    assert len(lvlm.feature_cache) == 0
    assert lvlm.generate(prompts, max_new_tokens=4) == expected
    assert len(lvlm.feature_cache) == len({p for prompt in prompts for p in prompt.images})
    calls.clear()
    assert lvlm.generate(prompts, max_new_tokens=4) == expected
    assert not calls


def test_llava_feature_cache_smaller_than_a_batch(
    build: Callable[[str], Any], batch: tuple[list[ICLPrompt], list[str]]
) -> None:
    # 5 distinct images through a 2-entry cache: entries are evicted while the batch that
    # needs them is being assembled, which must not change (or break) the scores.
    prompts, answers = batch
    path = build("llava").path
    expected = HFLVLM(path).score(prompts, answers)
    small = HFLVLM(path, image_feature_cache_size=2)
    _assert_scores_close(small.score(prompts, answers), expected)
    _assert_scores_close(small.score(prompts[::-1], answers[::-1]), expected[::-1])
    assert len(small.feature_cache) == 2


def test_llava_feature_cache_keeps_to_its_byte_budget(
    build: Callable[[str], Any], batch: tuple[list[ICLPrompt], list[str]]
) -> None:
    # A budget of two encodings' bytes holds two images whatever the image count allows; the
    # bytes it reports are its entries' own, and the scores do not change.
    from drum.lvlm.image_features import encoding_bytes

    prompts, answers = batch
    path = build("llava").path
    expected = HFLVLM(path).score(prompts, answers)
    roomy = HFLVLM(path)
    roomy.score(prompts, answers)
    entries = list(roomy.feature_cache._encodings.values())
    assert len(entries) > 2 and roomy.feature_cache.bytes == sum(map(encoding_bytes, entries))
    one = encoding_bytes(entries[0])
    small = HFLVLM(path, image_feature_cache_bytes=2 * one + one // 2)
    _assert_scores_close(small.score(prompts, answers), expected)
    assert len(small.feature_cache) == 2 and small.feature_cache.bytes == 2 * one
    small.feature_cache.clear()
    assert small.feature_cache.bytes == 0
    with pytest.raises(ValueError, match="max_bytes must be >= 0"):
        HFLVLM(path, image_feature_cache_bytes=-1)


def test_processor_without_chat_template_is_a_clear_error(
    build: Callable[[str], Any], tmp_path: Path
) -> None:
    copy = tmp_path / "llava-no-template"
    shutil.copytree(build("llava").path, copy)
    (copy / "chat_template.jinja").unlink()
    with pytest.raises(ValueError, match="no chat template"):
        HFLVLM(copy)

"""What the family-parametrized tests cannot see on the tiny Qwen3-VL, Gemma 3,
LLaVA-OneVision and Idefics2 models as saved: Gemma 3's bidirectional attention within each
image and its pan-and-scan crops, LLaVA-OneVision's anyres tiles for a prompt's only image,
Idefics2 with image splitting, and the image-only processors. Scores are checked against the
by-hand log-probability of ``test_hf_lvlm``; spans and VPG-C as there."""

from __future__ import annotations

import importlib.util
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from drum.adapters.vpgc import VPGCLVLM, VPGCConfig
from drum.data import read_examples
from drum.lvlm.hf import HFLVLM
from drum.lvlm.hooks import VisualPositions
from drum.lvlm.prompt import ICLPrompt, ImagePart, TextPart, Turn, build_prompt
from tests.lvlm.test_hf_lvlm import ATOL, _reference_score


def _copy_with(
    build: Callable[[str], Any], family: str, tmp_path: Path, **image_options: Any
) -> Path:
    """A copy of the family's tiny checkpoint with its image processor's options changed."""
    copy = tmp_path / family
    shutil.copytree(build(family).path, copy)
    config = json.loads((copy / "processor_config.json").read_text())
    config["image_processor"].update(image_options)
    (copy / "processor_config.json").write_text(json.dumps(config))
    return copy


def _spans(lvlm: HFLVLM, prompts: list[ICLPrompt], answers: list[str]) -> VisualPositions:
    seen: list[VisualPositions] = []

    def record(hidden: torch.Tensor, visual: VisualPositions) -> torch.Tensor:
        seen.append(visual)
        return hidden

    with lvlm.layer_hook(0, record):
        lvlm.score(prompts, answers)
    (visual,) = seen
    return visual


@pytest.fixture(scope="module")
def pool(tiny_world: Path) -> list[Any]:
    return read_examples(tiny_world / "vqa" / "pool.jsonl")


def test_gemma3_image_tokens_attend_both_ways(build: Callable[[str], Any], pool: list) -> None:
    lvlm = HFLVLM(build("gemma3").path)
    prompt = build_prompt(pool[1:3], pool[0])
    inputs = lvlm.score_inputs([prompt], [lvlm._answer_ids("red blue")])
    types = inputs.extra["token_type_ids"]
    assert torch.equal(types, (inputs.input_ids == lvlm.image_token_id).long())
    # Without them Gemma 3 would attend causally within images: other logits (on this tiny
    # random model by 1e-3), more than the by-hand score's tolerance.
    extra = {k: v for k, v in inputs.extra.items() if k != "token_type_ids"}
    with torch.no_grad():
        both_ways = lvlm.forward(inputs.input_ids, inputs.attention_mask, **inputs.extra).logits
        causal = lvlm.forward(inputs.input_ids, inputs.attention_mask, **extra).logits
    assert (both_ways - causal).abs().max() > 5 * ATOL


def test_gemma3_image_features_are_cached(build: Callable[[str], Any], pool: list) -> None:
    path = build("gemma3").path
    prompts = [build_prompt(pool[1:3], pool[0]), build_prompt(pool[4:5], pool[0])]
    answers = ["red blue", "small"]
    expected = HFLVLM(path, image_feature_cache_size=0).score(prompts, answers)
    lvlm = HFLVLM(path)
    calls: list[int] = []
    tower = lvlm.model.model.vision_tower
    handle = tower.register_forward_hook(lambda module, args, output: calls.append(1))
    try:
        first = lvlm.score(prompts, answers)
        assert calls and len(lvlm.feature_cache) == 4  # 4 distinct images of 5
        calls.clear()
        again = lvlm.score(prompts[::-1], answers[::-1])
        assert not calls
    finally:
        handle.remove()
    for result, cached, reordered in zip(expected, first, again[::-1], strict=True):
        assert cached.sum == pytest.approx(result.sum, abs=ATOL)
        assert reordered.sum == pytest.approx(cached.sum, abs=ATOL)


def test_gemma3_pan_and_scan_crops_are_one_images_tokens(
    build: Callable[[str], Any], pool: list, tmp_path: Path
) -> None:
    # Pan-and-scan is a processor-call option in transformers (off unless asked): turned on
    # here through the processor's defaults, with crops small enough for 32 px tiles.
    lvlm = HFLVLM(build("gemma3").path)
    lvlm.processor.images_kwargs = {
        **lvlm.processor.images_kwargs,
        "do_pan_and_scan": True,
        "pan_and_scan_min_crop_size": 16,
    }
    wide = tmp_path / "wide.png"
    Image.new("RGB", (64, 32), (200, 40, 40)).save(wide)
    prompt = ICLPrompt(
        (),
        Turn((TextPart("one"), ImagePart(wide), TextPart("two"), ImagePart(pool[0].image))),
    )
    other = build_prompt([], pool[1])
    prompts, answers = [prompt, other], ["red blue", "small"]
    # The wide image: itself and 2 crops of 4 tokens each, one image's span.
    assert lvlm._encode(prompts, count_image_tokens=True)[3] == [[12, 4], [4]]
    scores = lvlm.score(prompts, answers)
    for prompt_, answer, result in zip(prompts, answers, scores, strict=True):
        assert result.sum == pytest.approx(_reference_score(lvlm, prompt_, answer), abs=ATOL)
    # Crops are no one-row-per-image encodings: the feature cache stands aside.
    assert len(lvlm.feature_cache) == 0
    visual = _spans(lvlm, prompts, answers)
    (start, end), (second, _) = visual.spans[0]
    assert int(visual.mask[0, start:end].sum()) == 12 and end < second
    # VPG-C cuts the 4 rows of patch features as 3 (the wide image's crops) and 1.
    model = VPGCLVLM(lvlm, VPGCConfig(num_heads=2, seed=3))
    adapted = model.score(prompts, answers)
    assert [r.sum for r in adapted] == pytest.approx([r.sum for r in scores], abs=1e-6)


def test_llava_onevision_tiles_a_lone_image_only(build: Callable[[str], Any], pool: list) -> None:
    lvlm = HFLVLM(build("llava_onevision").path)
    assert "video_processor" not in type(lvlm.processor).get_attributes()
    lone = build_prompt([], pool[0])  # base tile + 1 anyres tile + 2 newlines
    two = build_prompt(pool[1:2], pool[2])  # base tile + 1 newline each
    _, vision, _, counts = lvlm._encode([lone, two], count_image_tokens=True)
    assert counts == [[10], [5, 5]]
    rows = lvlm.family.patch_rows(lvlm.model.config, vision)
    assert rows == [2, 1, 1]
    # They are the rows of the projector's input: what VPG-C cuts per image.
    seen: list[int] = []
    projector = lvlm.model.model.multi_modal_projector
    handle = projector.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[0]))
    try:
        scores = lvlm.score([lone, two], ["red", "small blue"])
    finally:
        handle.remove()
    assert seen == [sum(rows)]
    for prompt, answer, result in zip([lone, two], ["red", "small blue"], scores, strict=True):
        assert result.sum == pytest.approx(_reference_score(lvlm, prompt, answer), abs=ATOL)


def test_idefics2_with_image_splitting(
    build: Callable[[str], Any], pool: list, tmp_path: Path
) -> None:
    lvlm = HFLVLM(_copy_with(build, "idefics2", tmp_path, do_image_splitting=True))
    prompts = [build_prompt(pool[1:2], pool[0]), build_prompt([], pool[3])]
    answers = ["red blue", "small"]
    # Four crops and the whole image, 4 latents each, one image's span.
    assert lvlm._encode(prompts, count_image_tokens=True)[3] == [[20, 20], [20]]
    scores = lvlm.score(prompts, answers)
    for prompt, answer, result in zip(prompts, answers, scores, strict=True):
        assert result.sum == pytest.approx(_reference_score(lvlm, prompt, answer), abs=ATOL)
    assert [len(spans) for spans in _spans(lvlm, prompts, answers).spans] == [2, 1]
    model = VPGCLVLM(lvlm, VPGCConfig(num_heads=2, seed=3))
    adapted = model.score(prompts, answers)
    assert [r.sum for r in adapted] == pytest.approx([r.sum for r in scores], abs=1e-6)


def test_llava_onevision_with_a_video_processor_config_loads_image_only(
    build: Callable[[str], Any], pool: list, tmp_path: Path
) -> None:
    # Hub checkpoints ship a video processor config; without torchvision AutoProcessor raises
    # ImportError on it, and the image-only processor serves the images alike.
    path = build("llava_onevision").path
    copy = tmp_path / "onevision"
    shutil.copytree(path, copy)
    video = {"video_processor_type": "LlavaOnevisionVideoProcessor", "size": {"height": 32}}
    (copy / "video_preprocessor_config.json").write_text(json.dumps(video))
    lvlm = HFLVLM(copy)
    if importlib.util.find_spec("torchvision") is None:
        assert "video_processor" not in type(lvlm.processor).get_attributes()
    prompts = [build_prompt(pool[1:2], pool[0]), build_prompt([], pool[3])]
    answers = ["red", "small blue"]
    assert lvlm.score(prompts, answers) == HFLVLM(path).score(prompts, answers)


def test_idefics2_vpgc_keys_skip_the_padding_of_smaller_images(
    build: Callable[[str], Any], pool: list, tmp_path: Path
) -> None:
    # A 64 x 32 image is resized to 32 x 16 (8 patches) and padded to 32 x 32 beside a square
    # one: its padding patches are no keys, so VPG-C sees the same keys for it alone and
    # batched, and a trained adapter scores it alike.
    wide = tmp_path / "wide.png"
    Image.new("RGB", (64, 32), (40, 200, 40)).save(wide)
    model = VPGCLVLM(HFLVLM(build("idefics2").path), VPGCConfig(num_heads=2, seed=3))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.adapter.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator))
    keys: list[list[torch.Tensor]] = []
    per_image = model.adapter.per_image

    def record(*args: Any) -> list[torch.Tensor]:
        keys.append(per_image(*args))
        return keys[-1]

    model.adapter.per_image = record  # type: ignore[method-assign]
    prompts = [
        ICLPrompt((), Turn((TextPart("one"), ImagePart(wide), TextPart("two")))),
        build_prompt([], pool[0]),
    ]
    answers = ["red blue", "small"]
    batched = model.score(prompts, answers)
    alone = [model.score([p], [a])[0] for p, a in zip(prompts, answers, strict=True)]
    (wide_batched, square_batched), (wide_alone,), (square_alone,) = keys
    assert wide_batched.shape[0] == wide_alone.shape[0] == 8 and square_batched.shape[0] == 16
    assert torch.allclose(wide_batched, wide_alone, atol=1e-5)
    assert torch.allclose(square_batched, square_alone, atol=1e-5)
    assert [r.sum for r in batched] == pytest.approx([r.sum for r in alone], abs=ATOL)

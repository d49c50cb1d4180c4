"""The image-feature cache on Qwen2-VL, Qwen2.5-VL (``drum.lvlm.image_features``' ``"grid"``
layout) and Qwen3-VL (``"grid_deepstack"``: each image's deepstack features cached beside its
encoding): an image's encoding (and deepstack features) does not depend on its batch-mates;
scores and replies with the cache equal those without it (bypassed, or a cache of size 0) for
prompts of 1 to 3 images of different sizes (patch grids) beside text-only prompts; repeated
images run the vision tower once; the shared-prefix scorer reads the cache; layer hooks work on
cached encodings and VPG-C bypasses the cache. Gemma 3's generation, which reads the cache too,
replies as without it. Qwen3-VL's deepstack features reach the scores, its entries are evicted
whole, and ``answer_loss`` bypasses its cache."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from drum.adapters.vpgc import VPGCLVLM, VPGCConfig
from drum.data import read_examples
from drum.lvlm.base import ScoreResult
from drum.lvlm.families import FAMILIES, FEATURE_CACHE
from drum.lvlm.hf import HFLVLM
from drum.lvlm.image_features import LAYOUTS, DeepstackEncoding, Encoding
from drum.lvlm.prefix import shares_prefixes
from drum.lvlm.prompt import ICLPrompt, ImagePart, TextPart, Turn, build_prompt
from tests.lvlm import tiny_lvlms

QWEN = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")
ATOL = 1e-5
# (width, height) of the images beside the tiny world's 32 px ones: patch grids of 4 x 8,
# 8 x 4, 8 x 8 and 6 x 8 (8 px patches, up to 64 x 64 px).
SIZES = ((64, 32), (32, 64), (64, 64), (48, 64))
Prompts = tuple[list[ICLPrompt], list[str]]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Each Qwen family's tiny model whose processor keeps images up to 64 x 64 px (each
    image its own patch grid), built at most once."""
    built: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in built:
            path = tmp_path_factory.mktemp(f"{family}-mixed")
            built[family] = tiny_lvlms.BUILDERS[family](path, max_pixels=64 * 64).path
        return built[family]

    return get


@pytest.fixture(scope="module")
def sized(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """PNGs of ``SIZES``, seeded random pixels."""
    folder = tmp_path_factory.mktemp("sized")
    generator = torch.Generator().manual_seed(0)
    paths = []
    for number, (width, height) in enumerate(SIZES):
        pixels = (torch.rand(height, width, 3, generator=generator) * 255).byte().numpy()
        path = folder / f"sized-{number}.png"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def prompts(tiny_world: Path, sized: list[Path]) -> Prompts:
    """1, 2 and 3 images of different sizes a prompt, a text-only prompt, and images that
    recur across prompts (and within one)."""
    pool = read_examples(tiny_world / "vqa" / "pool.jsonl")
    one = build_prompt([], pool[0])
    two = ICLPrompt(
        (Turn((ImagePart(sized[0]), TextPart("small")), "red"),),
        Turn((TextPart("large"), ImagePart(sized[1]), TextPart(pool[1].text))),
    )
    text_only = ICLPrompt((), Turn((TextPart(pool[3].text),)))
    three = ICLPrompt(
        (),
        Turn(
            (
                ImagePart(sized[2]),
                TextPart("one"),
                ImagePart(sized[3]),
                ImagePart(pool[0].image),
                TextPart(pool[2].text),
            )
        ),
    )
    again = ICLPrompt(
        (Turn((ImagePart(sized[1]),), "blue"),),
        Turn((ImagePart(sized[1]), TextPart(pool[4].text))),
    )
    return [one, two, text_only, three, again], ["red blue", "small", "one two", "green", "large"]


def _distinct(prompts: list[ICLPrompt]) -> int:
    return len({path for prompt in prompts for path in prompt.images})


def _max_diff(actual: list[ScoreResult], expected: list[ScoreResult]) -> float:
    assert [r.tokens for r in actual] == [r.tokens for r in expected]
    return max(abs(a.sum - e.sum) for a, e in zip(actual, expected, strict=True))


def _tensors(encoding: Encoding) -> tuple[torch.Tensor, ...]:
    """An encoding's tensors: its pooled one, then its deepstack features (Qwen3-VL)."""
    if isinstance(encoding, DeepstackEncoding):
        return (encoding.pooled, *encoding.deepstack)
    return (encoding,)


@contextmanager
def vision_calls(lvlm: HFLVLM) -> Iterator[list[int]]:
    """The patch rows of each vision-tower call of ``lvlm`` inside the block."""
    inner = lvlm.model.model
    tower = getattr(inner, "visual", None) or inner.vision_tower
    calls: list[int] = []
    handle = tower.register_forward_hook(lambda module, args, output: calls.append(len(args[0])))
    try:
        yield calls
    finally:
        handle.remove()


def test_the_layouts_are_the_records_values() -> None:
    assert sorted(LAYOUTS) == sorted(name for name in FEATURE_CACHE if name)
    assert {FAMILIES[name].feature_cache for name in QWEN[:2]} == {"grid"}
    assert FAMILIES["qwen3_vl"].feature_cache == "grid_deepstack"
    assert LAYOUTS["grid_deepstack"].grid and LAYOUTS["grid_deepstack"].deepstack


@pytest.mark.parametrize("family", QWEN)
def test_an_images_encoding_does_not_depend_on_its_batch_mates(
    family: str, mixed: Callable[[str], Path], sized: list[Path], tiny_world: Path
) -> None:
    lvlm = HFLVLM(mixed(family))
    layout = lvlm.feature_cache.layout
    paths = [*sized, read_examples(tiny_world / "vqa" / "pool.jsonl")[0].image]
    pixels = layout.split(lvlm.feature_cache.preprocess(paths), len(paths))
    assert pixels is not None
    grids = [tuple(image["image_grid_thw"][0].tolist()) for image in pixels]
    assert len(set(grids)) == len(paths)  # every image its own grid
    with torch.inference_mode():
        together = layout.encode(lvlm.model, pixels, lvlm.device)
        reversed_ = layout.encode(lvlm.model, pixels[::-1], lvlm.device)[::-1]
        alone = [layout.encode(lvlm.model, [image], lvlm.device)[0] for image in pixels]
    deepstack = lvlm.feature_cache.layout.deepstack
    width = lvlm.model.config.text_config.hidden_size
    for grid, feature in zip(grids, together, strict=True):
        assert isinstance(feature, DeepstackEncoding) == deepstack
        # 2 x 2 patches a token, in the pooled output and every deepstack layer (Qwen3-VL: 1).
        shapes = [tuple(tensor.shape) for tensor in _tensors(feature)]
        assert shapes == [(grid[0] * grid[1] * grid[2] // 4, width)] * (2 if deepstack else 1)
    # Measured on the tiny models: equal to the bit (cu_seqlens, windows within an image;
    # Qwen3-VL's position embeddings resampled per image grid), deepstack features included.
    for a, b, c in zip(together, reversed_, alone, strict=True):
        for x, y, z in zip(_tensors(a), _tensors(b), _tensors(c), strict=True):
            assert torch.equal(x, y) and torch.equal(x, z)


def test_a_grid_split_refuses_inputs_that_are_not_one_grid_an_image() -> None:
    layout = LAYOUTS["grid"]
    vision = {"pixel_values": torch.zeros(20, 3), "image_grid_thw": torch.tensor([[1, 2, 2]])}
    assert layout.split(vision, 1) is None  # 20 rows for a 4-patch grid
    assert layout.split(vision, 2) is None  # 1 grid for 2 images
    assert LAYOUTS["rows"].split({"pixel_values": torch.zeros(3, 1)}, 2) is None


@pytest.mark.parametrize("family", QWEN)
def test_cached_scores_equal_uncached_ones(
    family: str, mixed: Callable[[str], Path], prompts: Prompts
) -> None:
    batch, answers = prompts
    path = mixed(family)
    reference = HFLVLM(path, share_prefixes=False)
    with reference.feature_cache_bypassed():
        expected = reference.score(batch, answers)
    assert len(reference.feature_cache) == 0
    whole = HFLVLM(path, share_prefixes=False)  # score_inputs' path, cached
    assert _max_diff(whole.score(batch, answers), expected) <= ATOL
    assert _max_diff(whole.score(batch, answers, batch_size=2), expected) <= ATOL
    assert len(whole.feature_cache) == _distinct(batch)
    # The default path (Qwen2-VL: shared prefixes) with the cache and with a cache of size 0.
    cached, empty = HFLVLM(path), HFLVLM(path, image_feature_cache_size=0)
    scores = cached.score(batch, answers)
    assert _max_diff(scores, empty.score(batch, answers)) <= ATOL
    assert _max_diff(scores, expected) <= ATOL
    with vision_calls(empty) as calls:
        assert _max_diff(empty.score(batch, answers), scores) <= ATOL
    assert calls and len(empty.feature_cache) == 0  # size 0 keeps nothing between calls


@pytest.mark.parametrize("family", QWEN)
def test_repeated_images_run_the_vision_tower_once(
    family: str, mixed: Callable[[str], Path], prompts: Prompts
) -> None:
    batch, answers = prompts
    lvlm = HFLVLM(mixed(family))
    distinct = list(dict.fromkeys(path for prompt in batch for path in prompt.images))
    pixels = lvlm.feature_cache.preprocess(distinct)["pixel_values"]
    with vision_calls(lvlm) as calls:
        first = lvlm.score(batch, answers)
        # One call for the batch, each distinct image's patches once (7 images, 5 distinct).
        assert calls == [len(pixels)]
        calls.clear()
        again = lvlm.score(batch[::-1], answers[::-1])
        assert not calls
    assert len(lvlm.feature_cache) == len(distinct) < sum(len(p.images) for p in batch)
    assert _max_diff(again[::-1], first) <= ATOL


@pytest.mark.parametrize("family", [*QWEN, "gemma3"])
def test_generation_replies_as_without_the_cache(
    family: str,
    mixed: Callable[[str], Path],
    build: Callable[[str], Any],
    prompts: Prompts,
    tiny_world: Path,
) -> None:
    if family == "gemma3":  # one size of image (its processor resizes every image alike)
        pool = read_examples(tiny_world / "vqa" / "pool.jsonl")
        batch = [build_prompt(pool[1:3], pool[0]), build_prompt([], pool[3]), prompts[0][2]]
        lvlm = HFLVLM(build(family).path)
    else:
        batch = prompts[0]
        lvlm = HFLVLM(mixed(family))
    with lvlm.feature_cache_bypassed():
        expected = lvlm.generate(batch, max_new_tokens=4)
    assert len(lvlm.feature_cache) == 0
    assert lvlm.generate(batch, max_new_tokens=4) == expected
    assert len(lvlm.feature_cache) == _distinct(batch)
    with vision_calls(lvlm) as calls:
        assert lvlm.generate(batch, max_new_tokens=4, batch_size=2) == expected
    assert not calls


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen3_vl"])
def test_shared_prefixes_read_the_cache(
    family: str, mixed: Callable[[str], Path], sized: list[Path], tiny_world: Path
) -> None:
    # Feedback-like: 3 queries, each after 3 of 4 one-shot candidates (candidates recur).
    pool = read_examples(tiny_world / "vqa" / "pool.jsonl")
    demos = [Turn((ImagePart(sized[k]), TextPart(pool[k].text)), pool[k].answer) for k in range(4)]
    queries = [Turn((ImagePart(pool[5 + q].image), TextPart(pool[5 + q].text))) for q in range(3)]
    batch = [ICLPrompt((demos[(q + c) % 4],), queries[q]) for q in range(3) for c in range(3)]
    answers = [pool[5 + q].answer for q in range(3) for _ in range(3)]
    path = mixed(family)
    shared = HFLVLM(path)
    assert shares_prefixes(shared)
    whole = HFLVLM(path, share_prefixes=False, image_feature_cache_size=0)
    expected = whole.score(batch, answers)
    with vision_calls(shared) as calls:
        # The prefix path's tolerance (tests/lvlm/test_prefix.py).
        assert _max_diff(shared.score(batch, answers, batch_size=4), expected) <= 1e-4
        assert len(calls) == 1 and len(shared.feature_cache) == _distinct(batch)
        calls.clear()
        assert _max_diff(shared.score(batch, answers, batch_size=4), expected) <= 1e-4
    assert not calls


@pytest.mark.parametrize("family", QWEN)
def test_layer_hooks_act_on_cached_encodings(
    family: str, mixed: Callable[[str], Path], prompts: Prompts
) -> None:
    batch, answers = prompts
    lvlm = HFLVLM(mixed(family))
    plain = lvlm.score(batch, answers)

    def hook(hidden: torch.Tensor, visual: Any) -> torch.Tensor:
        return hidden + 0.5 * visual.mask[..., None].to(hidden.dtype)

    with lvlm.layer_hook(0, hook):
        with lvlm.feature_cache_bypassed():
            expected = lvlm.score(batch, answers)
        with vision_calls(lvlm) as calls:
            hooked = lvlm.score(batch, answers)
    assert not calls  # the encodings came from the cache
    assert _max_diff(hooked, expected) <= ATOL
    assert _max_diff(hooked, plain) > 1e-3  # the hook did act


@pytest.mark.parametrize("family", QWEN)
def test_vpgc_bypasses_the_cache(family: str, build: Callable[[str], Any], batch: Prompts) -> None:
    prompts, answers = batch
    path = build(family).path

    def adapted(base: HFLVLM) -> VPGCLVLM:
        model = VPGCLVLM(base, VPGCConfig(num_heads=2, seed=3))
        generator = torch.Generator().manual_seed(1)
        with torch.no_grad():  # VPG-C starts as the identity: make it act
            for parameter in model.adapter.parameters():
                parameter.copy_(0.3 * torch.randn(parameter.shape, generator=generator))
        return model

    warm = HFLVLM(path)
    plain = warm.score(prompts, answers)
    assert len(warm.feature_cache) == _distinct(prompts)
    model = adapted(warm)
    with vision_calls(warm) as calls:
        scores = model.score(prompts, answers)
    assert calls  # the vision tower ran: VPG-C reads its patch features
    expected = adapted(HFLVLM(path, image_feature_cache_size=0)).score(prompts, answers)
    assert _max_diff(scores, expected) <= ATOL
    assert _max_diff(scores, plain) > 1e-3


def test_qwen3_vl_passes_its_deepstack_features_back(
    mixed: Callable[[str], Path], prompts: Prompts
) -> None:
    batch, answers = prompts
    lvlm = HFLVLM(mixed("qwen3_vl"))
    answer_ids = [lvlm._answer_ids(answer) for answer in answers]
    with torch.inference_mode():
        inputs = lvlm.score_inputs(batch, answer_ids)
        assert "pixel_values" not in inputs.extra and "image_grid_thw" in inputs.extra
        output = inputs.extra["mm_encoder_outputs"]["image"]
        images = sum(len(prompt.images) for prompt in batch)
        # transformers' deepstack output: per layer (1 here), one tensor per image in order.
        assert type(output).__name__ == "BaseModelOutputWithDeepstackFeatures"
        assert len(output.pooler_output) == images
        assert [len(layer) for layer in output.deepstack_features] == [images]
        logits = lvlm.forward(inputs.input_ids, inputs.attention_mask, **inputs.extra).logits
        # Without them (zeros) the logits move: the cached deepstack features reach the scores.
        output.deepstack_features = [
            [torch.zeros_like(feature) for feature in layer] for layer in output.deepstack_features
        ]
        blind = lvlm.forward(inputs.input_ids, inputs.attention_mask, **inputs.extra).logits
    assert (logits - blind).abs().max() > 1e-3


def test_qwen3_vl_cache_smaller_than_a_batch_keeps_whole_entries(
    mixed: Callable[[str], Path], prompts: Prompts, sized: list[Path]
) -> None:
    # 5 distinct images through a 2-entry cache: each entry (tokens and deepstack features)
    # is counted once and evicted whole while the batch that needs them is assembled.
    batch, answers = prompts
    path = mixed("qwen3_vl")
    expected = HFLVLM(path, image_feature_cache_size=0).score(batch, answers)
    small = HFLVLM(path, image_feature_cache_size=2)
    assert _max_diff(small.score(batch, answers), expected) <= ATOL
    assert _max_diff(small.score(batch[::-1], answers[::-1]), expected[::-1]) <= ATOL
    assert len(small.feature_cache) == 2
    # Least recently used out first, an image's tokens and deepstack features together.
    cache = small.feature_cache
    cache.clear()
    a, b, c = sized[:3]
    with vision_calls(small) as calls, torch.inference_mode():
        first = cache.features([a, b])
        cache.features([c])  # evicts a
        assert len(cache) == 2 and len(calls) == 2
        kept = cache.features([b, c])
        assert len(calls) == 2  # b and c were kept
        again = cache.features([a])
        assert len(calls) == 3  # a was not
    assert kept[0] is first[1]
    for old, new in zip(_tensors(first[0]), _tensors(again[0]), strict=True):
        assert torch.equal(old, new)
    assert all(isinstance(entry, DeepstackEncoding) for entry in [*first, *kept, *again])


def test_qwen3_vl_entries_count_their_deepstack_bytes(
    mixed: Callable[[str], Path], prompts: Prompts
) -> None:
    from drum.lvlm.image_features import encoding_bytes

    batch, answers = prompts
    lvlm = HFLVLM(mixed("qwen3_vl"))
    lvlm.score(batch, answers)
    entries = list(lvlm.feature_cache._encodings.values())
    pooled = sum(e.pooled.numel() * e.pooled.element_size() for e in entries)
    assert all(e.deepstack for e in entries)
    assert lvlm.feature_cache.bytes == sum(map(encoding_bytes, entries)) > pooled


def test_qwen3_vl_answer_loss_bypasses_the_cache(
    mixed: Callable[[str], Path], prompts: Prompts
) -> None:
    batch, answers = prompts
    lvlm = HFLVLM(mixed("qwen3_vl"))
    with vision_calls(lvlm) as calls:
        loss = lvlm.answer_loss(batch, answers)
    assert calls and len(lvlm.feature_cache) == 0
    loss.backward()
    merger = lvlm.model.model.visual.deepstack_merger_list[0]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in merger.parameters())

"""VPG-C on tiny random bases: a fresh adapter is exactly its base; only the adapter trains;
adapter-only save / load; the residual lands at every image's visual tokens and nowhere
else; a trained adapter changes scores and replies; config round trip and range errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open

from drum.adapters import CONFIG_NAME
from drum.adapters.vpgc import (
    VPGCLVLM,
    VPGCConfig,
    VPGCConfigError,
    load_adapter,
    parameter_count,
)
from drum.adapters.vpgc.layer import VPGCError, split_rows
from drum.adapters.vpgc.model import WEIGHTS_NAME
from drum.lvlm.hf import HFLVLM
from drum.lvlm.hooks import decoder_layers
from drum.lvlm.prompt import ICLPrompt

Prompts = tuple[list[ICLPrompt], list[str]]
Base = Callable[[str], HFLVLM]
CONFIG = VPGCConfig(num_heads=2, seed=3)
# Issue 23's families: checked as the others (a fresh adapter is its base, a trained one
# changes scores and replies alike batched and alone, the residual lands at every image's
# visual tokens).
NEW_FAMILIES = ("qwen3_vl", "gemma3", "llava_onevision", "idefics2", "internvl", "mistral3")
# Images through cross-attention layers: the residual joins their image states
# (drum.adapters.vpgc.cross_attention; its own checks in test_vpgc_cross_attention.py).
CROSS_ATTENTION = ("idefics", "mllama")


def _perturb(model: VPGCLVLM, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.adapter.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator))


def _sums(results: list[Any]) -> torch.Tensor:
    return torch.tensor([r.sum for r in results], dtype=torch.float64)


@pytest.mark.parametrize(
    "family", ["llava", "qwen2_vl", "idefics3", "blip2", *NEW_FAMILIES, *CROSS_ATTENTION]
)
def test_a_fresh_adapter_is_exactly_its_base(
    fresh_base: Base, vpgc_prompts: Prompts, family: str
) -> None:
    base = fresh_base(family)
    prompts, answers = vpgc_prompts
    scores = _sums(base.score(prompts, answers))
    replies = base.generate(prompts, max_new_tokens=4)
    model = VPGCLVLM(base, CONFIG)
    assert torch.allclose(_sums(model.score(prompts, answers)), scores, rtol=0, atol=1e-6)
    assert model.generate(prompts, max_new_tokens=4) == replies
    # The adapter acts only inside its calls: the base alone is unchanged afterwards.
    assert torch.allclose(_sums(base.score(prompts, answers)), scores, rtol=0, atol=1e-6)


@pytest.mark.parametrize("family", ["llava", "qwen2_vl", *NEW_FAMILIES, *CROSS_ATTENTION])
def test_a_perturbed_adapter_changes_scores(
    fresh_base: Base, vpgc_prompts: Prompts, family: str
) -> None:
    base = fresh_base(family)
    prompts, answers = vpgc_prompts
    scores = _sums(base.score(prompts, answers))
    model = VPGCLVLM(base, CONFIG)
    fresh = model.fingerprint
    _perturb(model)
    assert model.fingerprint != fresh and model.fingerprint.startswith(base.fingerprint)
    changed = _sums(model.score(prompts, answers))
    imaged = [i for i, prompt in enumerate(prompts) if prompt.images]
    assert all(abs(changed[i] - scores[i]) > 1e-5 for i in imaged)
    # A prompt without images gets no residual.
    [text_only] = [i for i in range(len(prompts)) if i not in imaged]
    assert changed[text_only] == scores[text_only]
    # Batched as one at a time: every image of the batch got its own patch features.
    assert torch.allclose(_alone(model, prompts, answers), changed, rtol=0, atol=1e-4)


def _alone(model: VPGCLVLM, prompts: list[ICLPrompt], answers: list[str]) -> torch.Tensor:
    """Each prompt's score run alone; a text-only prompt of a base whose batches need an image
    (IDEFICS) beside the first imaged one (its row sees none of that image)."""
    scores = []
    for prompt, answer in zip(prompts, answers, strict=True):
        if prompt.images or not model.base.family.requires_image:
            scores.append(model.score([prompt], [answer])[0].sum)
        else:
            pairs = zip(prompts, answers, strict=True)
            imaged, its_answer = next((p, a) for p, a in pairs if p.images)
            scores.append(model.score([imaged, prompt], [its_answer, answer])[1].sum)
    return torch.tensor(scores, dtype=torch.float64)


# The tiny Mistral3's greedy replies do not depend on its images at all (the same reply for
# every prompt), so no adapter can change them: its scores are checked above.
@pytest.mark.parametrize(
    "family",
    ["llava", "qwen2_vl", *(f for f in NEW_FAMILIES if f != "mistral3"), *CROSS_ATTENTION],
)
def test_a_perturbed_adapter_changes_replies(
    fresh_base: Base, vpgc_prompts: Prompts, family: str
) -> None:
    base = fresh_base(family)
    prompts = vpgc_prompts[0]
    replies = base.generate(prompts, max_new_tokens=4)
    model = VPGCLVLM(base, CONFIG)
    _perturb(model)
    assert model.generate(prompts, max_new_tokens=4) != replies


@pytest.mark.parametrize("family", ["llava", "qwen2_vl", "blip2", *NEW_FAMILIES])
def test_the_residual_lands_exactly_at_every_images_visual_tokens(
    fresh_base: Base, vpgc_prompts: Prompts, family: str
) -> None:
    base = fresh_base(family)
    prompts, answers = vpgc_prompts[0][:3], vpgc_prompts[1][:3]  # 2, 3 and 3 images
    model = VPGCLVLM(base, CONFIG)
    _perturb(model)
    layer = decoder_layers(base.model)[model.config.layer]
    seen: list[torch.Tensor] = []

    def record(module: torch.nn.Module, args: Any, kwargs: Any) -> None:
        seen.append((args[0] if args else kwargs["hidden_states"]).detach().clone())

    handle = layer.register_forward_pre_hook(record, with_kwargs=True)
    try:
        with base.feature_cache_bypassed():  # the base's visual tokens made as the adapter's
            base.score(prompts, answers)
        model.score(prompts, answers)
    finally:
        handle.remove()
    without, with_adapter = seen
    answer_ids = [base._answer_ids(answer) for answer in answers]
    visual = base.score_inputs(prompts, answer_ids, positions=True).visual
    assert visual is not None and [len(s) for s in visual.spans] == [2, 3, 3]
    moved = (with_adapter - without).abs().amax(dim=-1) > 1e-6
    assert torch.equal(moved, visual.mask)  # every visual token of every image, nothing else
    assert torch.equal(with_adapter[~visual.mask], without[~visual.mask])


@pytest.mark.parametrize("family", ["llava", "blip2", *CROSS_ATTENTION])
def test_only_the_adapter_trains(fresh_base: Base, vpgc_prompts: Prompts, family: str) -> None:
    base = fresh_base(family)
    model = VPGCLVLM(base, CONFIG)
    prompts, answers = vpgc_prompts
    assert [p for p in base.model.parameters() if p.requires_grad] == []
    assert all(p.requires_grad for p in model.trainable_parameters())
    before_base = {k: v.clone() for k, v in base.model.state_dict().items()}
    before = {k: v.clone() for k, v in model.adapter.state_dict().items()}
    optimizer = torch.optim.Adam(model.trainable_parameters(), lr=1e-2)
    # Step 1 moves the zero-init output map (everything upstream of it gets zero gradient
    # while it is zero); step 2 moves everything.
    for _ in range(2):
        optimizer.zero_grad()
        loss = model.loss(prompts, answers, add_eos=True)
        assert loss.requires_grad and loss.ndim == 0
        loss.backward()
        optimizer.step()
    after_base = base.model.state_dict()
    assert all(torch.equal(before_base[k], after_base[k]) for k in before_base)
    after = model.adapter.state_dict()
    assert [k for k in before if torch.equal(before[k], after[k])] == []
    counts = parameter_count(model)
    assert counts.adapter == sum(v.numel() for v in before.values())
    assert counts.base == sum(p.numel() for p in base.model.parameters())
    assert 0 < counts.share < 1 and "VPG-C" in str(counts)


def test_the_loss_is_the_score_of_the_answer_tokens(
    fresh_base: Base, vpgc_prompts: Prompts
) -> None:
    model = VPGCLVLM(fresh_base("qwen2_vl"), CONFIG)
    _perturb(model)
    prompts, answers = vpgc_prompts
    scores = model.score(prompts, answers)
    expected = -sum(s.sum for s in scores) / sum(s.tokens for s in scores)
    assert model.loss(prompts, answers).item() == pytest.approx(expected, abs=1e-5)
    with pytest.raises(RuntimeError, match="inference_mode"), torch.inference_mode():
        model.loss(prompts, answers)


def test_save_load_is_adapter_only_and_round_trips(
    fresh_base: Base, vpgc_prompts: Prompts, tmp_path: Path
) -> None:
    prompts, answers = vpgc_prompts
    model = VPGCLVLM(fresh_base("llava"), CONFIG)
    _perturb(model)
    scores = _sums(model.score(prompts, answers))
    replies = model.generate(prompts, max_new_tokens=4)
    model.save_adapter(tmp_path / "adapter")
    assert sorted(p.name for p in (tmp_path / "adapter").iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]
    with safe_open(str(tmp_path / "adapter" / WEIGHTS_NAME), "pt") as weights:
        keys = list(weights.keys())
    assert keys and all(k.startswith("vpgc_") for k in keys)
    assert sorted(keys) == sorted(model.adapter.state_dict())

    loaded = load_adapter(fresh_base("llava"), tmp_path / "adapter")
    assert loaded.config == model.config
    assert loaded.fingerprint == model.fingerprint
    assert torch.equal(_sums(loaded.score(prompts, answers)), scores)
    assert loaded.generate(prompts, max_new_tokens=4) == replies
    # An adapter made for one base does not load onto another.
    with pytest.raises(VPGCConfigError, match="made for"):
        load_adapter(fresh_base("qwen2_vl"), tmp_path / "adapter")


def test_blip2_regenerates_its_query_tokens_per_image(
    fresh_base: Base, vpgc_prompts: Prompts
) -> None:
    base = fresh_base("blip2")
    prompts, answers = vpgc_prompts[0][:4], vpgc_prompts[1][:4]  # every prompt has images
    scores = _sums(base.score(prompts, answers))
    replies = base.generate(prompts, max_new_tokens=4)
    model = VPGCLVLM(base, VPGCConfig(seed=1))
    config = model.config
    assert config.base_kind == "qformer" and config.num_queries == 4 and config.hidden_size == 32
    # A trainable copy of the base's query tokens; the base's own stay as they were.
    assert torch.equal(model.adapter.vpgc_query_tokens, base.model.query_tokens[0])
    assert model.adapter.vpgc_query_tokens.data_ptr() != base.model.query_tokens.data_ptr()
    _perturb(model)
    changed = _sums(model.score(prompts, answers))
    assert all(abs(changed - scores) > 1e-5)
    assert model.generate(prompts, max_new_tokens=4) != replies
    alone = torch.cat([_sums(model.score([p], [a])) for p, a in zip(prompts, answers, strict=True)])
    assert torch.allclose(alone, changed, rtol=0, atol=1e-4)
    assert not any(p.requires_grad for p in base.model.qformer.parameters())


def test_blip2_query_copies_start_as_the_base_and_map_side_by_side(
    fresh_base: Base, vpgc_prompts: Prompts
) -> None:
    base = fresh_base("blip2")
    prompts, answers = vpgc_prompts[0][:4], vpgc_prompts[1][:4]
    scores = _sums(base.score(prompts, answers))
    model = VPGCLVLM(base, VPGCConfig(seed=1, query_copies=3))
    adapter = model.adapter
    assert adapter.vpgc_query_tokens.shape == (3 * 4, 32)
    assert adapter.vpgc_out_proj.in_features == 3 * 32
    assert torch.allclose(_sums(model.score(prompts, answers)), scores, rtol=0, atol=1e-6)
    # Every copy starts as the base's queries; a non-zero map of one copy moves the scores,
    # batched as one at a time.
    assert torch.equal(adapter.vpgc_query_tokens[8:], base.model.query_tokens[0])
    with torch.no_grad():
        adapter.vpgc_out_proj.weight[:, 64:].normal_(generator=torch.Generator().manual_seed(0))
    changed = _sums(model.score(prompts, answers))
    assert all(abs(changed - scores) > 1e-5)
    alone = torch.cat([_sums(model.score([p], [a])) for p, a in zip(prompts, answers, strict=True)])
    assert torch.allclose(alone, changed, rtol=0, atol=1e-4)
    with pytest.raises(VPGCConfigError, match="query_copies"):
        VPGCLVLM(fresh_base("llava"), VPGCConfig(query_copies=2))


def test_config_json_round_trip(tmp_path: Path) -> None:
    config = VPGCConfig(layer=3, hidden_size=64, num_heads=4, seed=7, model_type="llava")
    assert VPGCConfig.from_json(config.to_json()) == config
    config.save(tmp_path)
    assert VPGCConfig.load(tmp_path) == config
    assert json.loads((tmp_path / CONFIG_NAME).read_text())["adapter_type"] == "vpgc"
    with pytest.raises(VPGCConfigError, match="unknown"):
        VPGCConfig.from_dict({"layer": 1, "rank": 8})
    with pytest.raises(VPGCConfigError, match="not a VPG-C"):
        VPGCConfig.from_dict({"adapter_type": "lora"})


def test_resolve_fills_the_base_fields(fresh_base: Base) -> None:
    base = fresh_base("llava")
    model = VPGCLVLM(base, VPGCConfig(num_heads=2, hidden_size=None))
    config = model.config
    assert config.resolved and config.layer == 1 and config.num_layers == 2  # L // 2
    assert config.llm_hidden_size == 32 and config.vision_hidden_size == 32
    assert config.hidden_size == config.vision_hidden_size


BLIP2_FIELDS = dict(model_type="blip-2", base_kind="qformer", num_layers=2, llm_hidden_size=32,
                    vision_hidden_size=48, hidden_size=32, num_queries=4)  # fmt: skip


def test_the_per_base_rules_live_in_resolve() -> None:
    # The defaults are the ones training uses: 2 heads, width 16 on projector bases.
    projector = VPGCConfig().resolve(model_type="llava", base_kind="projector", num_layers=4,
                                     llm_hidden_size=32, vision_hidden_size=64)  # fmt: skip
    assert (projector.num_heads, projector.hidden_size, projector.layer) == (2, 16, 2)
    # A Q-Former base fixes the width and queries of a config not yet fitted to a base ...
    qformer = VPGCConfig().resolve(**BLIP2_FIELDS)
    assert (qformer.hidden_size, qformer.num_queries, qformer.base_kind) == (32, 4, "qformer")
    # ... while a fitted one (a saved adapter) must agree with it.
    with pytest.raises(VPGCConfigError, match="made for hidden_size=16"):
        replace(qformer, hidden_size=16).resolve(**BLIP2_FIELDS)


def test_an_adapter_config_saved_before_loads(tmp_path: Path) -> None:
    # adapter_config.json as the first release of the trainer wrote it (llava, width 16).
    saved = {"adapter_type": "vpgc", "base_kind": "projector", "hidden_size": 16, "layer": 2,
             "llm_hidden_size": 64, "model_type": "llava", "num_heads": 2, "num_layers": 4,
             "num_queries": None, "seed": 0, "vision_hidden_size": 64}  # fmt: skip
    (tmp_path / CONFIG_NAME).write_text(json.dumps(saved))
    config = VPGCConfig.load(tmp_path)
    assert config.to_dict() == {**saved, "query_copies": 1} and config.resolved


@pytest.mark.parametrize("layer", [0, 2, -1, 10])
def test_a_layer_out_of_range_is_a_clear_error(fresh_base: Base, layer: int) -> None:
    with pytest.raises(VPGCConfigError, match=r"layer .* out of range.*\[1, 1\]"):
        VPGCLVLM(fresh_base("llava"), VPGCConfig(layer=layer, num_heads=2))


def test_heads_must_divide_the_width(fresh_base: Base) -> None:
    with pytest.raises(VPGCConfigError, match="num_heads"):
        VPGCLVLM(fresh_base("llava"), VPGCConfig(num_heads=5))


def test_rows_of_patches_are_cut_per_image() -> None:
    rows = torch.arange(5 * 2 * 3, dtype=torch.float).reshape(5, 2, 3)  # 5 rows of 2 patches
    # Every row the same 4 visual tokens: images of 8, 4 and 8 tokens hold 2, 1 and 2 rows.
    cut = split_rows(rows, [8, 4, 8])
    assert [c.shape for c in cut] == [(4, 3), (2, 3), (4, 3)]
    assert torch.equal(torch.cat(cut), rows.reshape(-1, 3))
    # Rows of unequal token counts (LLaVA-OneVision: a lone image's tiles, newline tokens)
    # cannot be told apart by counts; the family's rows can.
    with pytest.raises(VPGCError, match="not the same number of visual tokens per row"):
        split_rows(rows, [10, 5, 5])
    assert [c.shape[0] for c in split_rows(rows, [10, 5, 5], [3, 1, 1])] == [6, 2, 2]
    with pytest.raises(VPGCError, match="5 rows of patch features, but the images have"):
        split_rows(rows, [10, 5, 5], [2, 1, 1])
    # A patch mask keeps the real patches alone (Idefics2's padding).
    mask = torch.tensor([[1, 0], [1, 1], [1, 1], [0, 1], [1, 1]])
    assert [c.shape[0] for c in split_rows(rows, [8, 4, 8], mask=mask)] == [3, 2, 3]

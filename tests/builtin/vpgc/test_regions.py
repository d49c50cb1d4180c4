"""Region choice by attention (``drum.lvlm.attention``) on tiny random HF bases: the
chosen region is recomputed here from the model's own attention, independently."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from drum.builtin.vpgc.data import SyntheticVPGCConfig, make_synthetic_vpgc
from drum.builtin.vpgc.photos import PhotoVPGCConfig, base_image_geometry, make_photo_vpgc
from drum.demon.format import read_demon_task
from drum.lvlm.hf import HFLVLM
from drum.utils.fingerprint import directory_digest
from tests.lvlm.tiny_lvlms import build_tiny_blip2


@pytest.fixture(scope="module")
def blip2_grid4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BLIP-2 whose tower cuts a 32 px image into 4 x 4 patches of 8 px, its vision
    tower's matrices and its Q-Former's cross-attention queries and keys redrawn (BLIP-2's
    vision init std is 1e-10: every patch's features, and so the cross-attention, would be
    the same, and every argmin a tie)."""
    from transformers import Blip2ForConditionalGeneration

    path = build_tiny_blip2(tmp_path_factory.mktemp("blip2-p8"), patch_size=8).path
    model = Blip2ForConditionalGeneration.from_pretrained(path)
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in model.vision_model.parameters():
            if parameter.ndim >= 2:
                parameter.normal_(std=0.2)
        for layer in model.qformer.encoder.layer:
            if hasattr(layer, "crossattention"):
                attention = layer.crossattention.attention
                for linear in (attention.query, attention.key):
                    linear.weight.normal_(std=0.5)
    model.save_pretrained(path)
    return path


def _metas(task_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (task_dir / "meta.jsonl").read_text().splitlines()]


def _cross_attention_by_hand(lvlm: HFLVLM, path: Path) -> np.ndarray:
    """Q-Former cross-attention of one image, averaged over layers, heads and queries, CLS
    dropped, as a (grid, grid) map: from the model's modules, not the code under test."""
    model = lvlm.model
    pixels = lvlm.processor.image_processor([Image.open(path).convert("RGB")],
                                            return_tensors="pt")["pixel_values"]  # fmt: skip
    model.set_attn_implementation("eager")
    with torch.no_grad():
        vision = model.vision_model(pixel_values=pixels).last_hidden_state
        out = model.qformer(
            query_embeds=model.query_tokens.expand(1, -1, -1),
            encoder_hidden_states=vision,
            encoder_attention_mask=torch.ones(vision.shape[:2], dtype=torch.long),
            output_attentions=True,
        )
    maps = [a[0].mean(dim=(0, 1)) for a in out.cross_attentions]  # per layer: (1 + P,)
    weights = torch.stack(maps).mean(dim=0)[1:].numpy()
    grid = int(np.sqrt(weights.size))
    return weights.reshape(grid, grid)


def test_blip2_photo_region_is_the_least_cross_attended_block(
    blip2_grid4: Path, tmp_path: Path
) -> None:
    lvlm = HFLVLM(blip2_grid4)
    assert base_image_geometry(lvlm) == (32, 8)
    config = PhotoVPGCConfig(n_train=5, region="attention", block=2, seed=1)
    make_photo_vpgc(tmp_path / "a", config, lvlm)
    task_dir = tmp_path / "a" / "train" / "OddOneOut"
    task = read_demon_task(task_dir)
    corners = set()
    for sample, meta in zip(task.samples, _metas(task_dir), strict=True):
        unedited = next(p for k, p in enumerate(sample.images) if k not in meta["edited_images"])
        grid_map = _cross_attention_by_hand(lvlm, unedited)
        assert grid_map.std() > 1e-3  # not a tie
        sums = {(r, c): grid_map[r : r + 2, c : c + 2].sum() for r in range(3) for c in range(3)}
        best = min(sums.values())
        expected = min(k for k, v in sums.items() if v == best)
        assert tuple(meta["region"]["corner"]) == expected
        corners.add(expected)
    assert len(corners) > 1  # the choice follows the image, not a fixed place
    # Deterministic: the same data again (the base's weights fixed).
    make_photo_vpgc(tmp_path / "b", config, HFLVLM(blip2_grid4))
    assert directory_digest(tmp_path / "a") == directory_digest(tmp_path / "b")


def test_blip2_world_region_is_the_least_cross_attended_quarter(
    blip2_grid4: Path, tmp_path: Path
) -> None:
    lvlm = HFLVLM(blip2_grid4)
    make_synthetic_vpgc(tmp_path / "w", SyntheticVPGCConfig(n_train=4), lvlm)
    task_dir = tmp_path / "w" / "train" / "WhatDiffers"
    task = read_demon_task(task_dir)
    for sample, meta in zip(task.samples, _metas(task_dir), strict=True):
        unedited = next(p for k, p in enumerate(sample.images) if k not in meta["edited_images"])
        grid_map = _cross_attention_by_hand(lvlm, unedited)
        quarters = [grid_map[r : r + 2, c : c + 2].sum() for r in (0, 2) for c in (0, 2)]
        assert meta["patch"] == int(np.argmin(quarters))


def test_llava_photo_region_is_the_least_attended_patch(vpgc_base_dir, tmp_path: Path) -> None:
    from drum.lvlm.attention import patch_attention
    from drum.lvlm.prompt import ICLPrompt, ImagePart, TextPart, Turn

    lvlm = HFLVLM(vpgc_base_dir("llava"))  # 2 x 2 patches, one visual token each
    make_photo_vpgc(tmp_path / "l", PhotoVPGCConfig(n_train=3, region="attention"), lvlm)
    task_dir = tmp_path / "l" / "train" / "SameOrNot"
    task = read_demon_task(task_dir)
    from drum.builtin.vpgc.photos import PHOTO_INSTRUCTIONS

    for sample, meta in zip(task.samples, _metas(task_dir), strict=True):
        instruction = PHOTO_INSTRUCTIONS["SameOrNot"][sample.instruction_id]
        unedited = next(p for k, p in enumerate(sample.images) if k not in meta["edited_images"])
        prompt = ICLPrompt((), Turn((TextPart(instruction), ImagePart(unedited),
                                     TextPart("are the two images the same ?"))))  # fmt: skip
        weights = patch_attention(lvlm, [prompt])[0]
        assert weights.shape == (4,)
        assert tuple(meta["region"]["corner"]) == divmod(int(torch.argmin(weights)), 2)


@pytest.mark.parametrize(("family", "grid"), [("qwen2_vl", 4), ("idefics3", 4), ("llava", 2)])
def test_photo_attention_regions_on_projector_bases(
    family: str, grid: int, vpgc_base_dir, tmp_path: Path
) -> None:
    """Qwen2-VL's merger and Idefics3's pixel shuffle give 2 x 2 tokens over 4 x 4 patches:
    the chosen 2 x 2 square is then one token's block or straddles several, inside the grid."""
    lvlm = HFLVLM(vpgc_base_dir(family))
    config = PhotoVPGCConfig(n_train=3, region="attention", block=min(2, grid))
    make_photo_vpgc(tmp_path / family, config, lvlm)
    card = json.loads((tmp_path / family / "synthetic_vpgc.json").read_text())
    assert card["geometry"]["grid"] == grid and card["base"] == lvlm.fingerprint
    for task in ("WhatDiffers", "OddOneOut"):
        for meta in _metas(tmp_path / family / "train" / task):
            row, col = meta["region"]["corner"]
            assert 0 <= row <= grid - config.block and 0 <= col <= grid - config.block

"""Synthetic edits of real-size photos (``drum.builtin.vpgc.photos``), without a base."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from drum.builtin.vpgc.edits import (
    EDIT_KINDS,
    PhotoScene,
    available_photos,
    change,
    edit_region,
    load_photo,
)
from drum.builtin.vpgc.photos import (
    EDIT_ANSWERS,
    NONE_ANSWER,
    PHOTO_TASKS,
    PhotoGeometry,
    PhotoVPGCConfig,
    default_block,
    make_photo_vpgc,
)
from drum.builtin.vpgc.sources import VPGCDataConfig, default_source
from drum.demon.format import read_demon_task
from drum.utils.fingerprint import directory_digest

SIZE, PATCH = 64, 8  # an 8 x 8 patch grid; default block 2 patches (6% of the image)


def _config(**changes) -> PhotoVPGCConfig:
    fields = dict(n_train=24, region="random", seed=5, image_size=SIZE, patch_size=PATCH)
    return PhotoVPGCConfig(**{**fields, **changes})


@pytest.fixture(scope="module")
def photo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("photos") / "data"
    make_photo_vpgc(root, _config(n_test=4))
    return root


def _task(root: Path, name: str) -> tuple[list, list[dict]]:
    folder = root / "train" / name
    metas = [json.loads(line) for line in (folder / "meta.jsonl").read_text().splitlines()]
    return list(read_demon_task(folder).samples), metas


def _pixels(sample) -> list[np.ndarray]:
    return [np.asarray(Image.open(p).convert("RGB"), dtype=np.int16) for p in sample.images]


def _outside(meta: dict) -> np.ndarray:
    top, left, side = meta["region"]["box"]
    mask = np.ones((SIZE, SIZE), dtype=bool)
    mask[top : top + side, left : left + side] = False
    return mask


def test_available_photos_load_offline_as_rgb() -> None:
    names = available_photos()
    assert {"astronaut", "camera", "chelsea", "coffee", "rocket"} <= set(names)
    for name in names:
        pixels = load_photo(name)
        assert pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3, name
        assert min(pixels.shape[:2]) >= 150, name
    with pytest.raises(ValueError, match="unknown photo 'nope'"):
        load_photo("nope")


@pytest.mark.parametrize("kind", EDIT_KINDS)
def test_each_edit_changes_its_box_only(kind: str) -> None:
    scene = PhotoScene("astronaut", 40, 100, 300, False)
    pixels = scene.render(SIZE)
    geometry = PhotoGeometry(SIZE, PATCH, 2)
    box = geometry.box((3, 4))
    edited, detail = edit_region(pixels, kind, box, np.random.default_rng(0), scene,
                                 available_photos())  # fmt: skip
    outside = np.ones(pixels.shape[:2], dtype=bool)
    outside[box] = False
    assert np.array_equal(edited[outside], pixels[outside])
    assert change(pixels, edited, box) > 1.0, detail
    with pytest.raises(ValueError, match="unknown edit kind"):
        edit_region(pixels, "rotated", box, np.random.default_rng(0), scene, ["camera", "moon"])


def test_geometry_and_default_block() -> None:
    assert default_block(16) == 3 and default_block(24) == 5 and default_block(2) == 1
    geometry = PhotoGeometry(224, 14, 3)
    assert geometry.grid == 16
    rows, cols = geometry.box((13, 0))
    assert (rows.start, rows.stop, cols.start, cols.stop) == (182, 224, 0, 42)
    assert 0.03 <= (3 * 14) ** 2 / 224**2 <= 0.05  # "a few % of the image"


def test_pixels_identical_outside_the_region_and_regions_inside(photo_data: Path) -> None:
    for name in PHOTO_TASKS:
        samples, metas = _task(photo_data, name)
        for sample, meta in zip(samples, metas, strict=True):
            top, left, side = meta["region"]["box"]
            assert 0 <= top and 0 <= left and top + side <= SIZE and left + side <= SIZE
            assert side == 2 * PATCH and top % PATCH == 0 and left % PATCH == 0
            images = _pixels(sample)
            outside = _outside(meta)
            for image in images[1:]:
                assert np.array_equal(image[outside], images[0][outside]), (name, meta)


def test_answers_follow_the_edit(photo_data: Path) -> None:
    samples, metas = _task(photo_data, "WhatDiffers")
    assert {s.response for s in samples} <= {*EDIT_ANSWERS.values(), NONE_ANSWER}
    for sample, meta in zip(samples, metas, strict=True):
        a, b = _pixels(sample)
        assert sorted(sample.choices) == sorted([*EDIT_ANSWERS.values(), NONE_ANSWER])
        if sample.response == NONE_ANSWER:
            assert np.array_equal(a, b) and meta["edited_images"] == []
        else:
            assert EDIT_ANSWERS[meta["edit"]["kind"]] == sample.response
            assert not np.array_equal(a, b) and len(meta["edited_images"]) == 1
    samples, metas = _task(photo_data, "WhichHas")
    for sample, meta in zip(samples, metas, strict=True):
        kinds = meta["edit"]["image_kinds"]
        asked = next(k for k in EDIT_KINDS if EDIT_ANSWERS[k] in sample.context)
        target = "AB".index(sample.response[-1])
        assert kinds[target] == asked and kinds[1 - target] != asked
    samples, metas = _task(photo_data, "OddOneOut")
    assert {len(s.images) for s in samples} == {3, 4}
    for sample, meta in zip(samples, metas, strict=True):
        images = _pixels(sample)
        target = "ABCD".index(sample.response[-1])
        assert meta["edited_images"] == [target]
        others = [im for k, im in enumerate(images) if k != target]
        assert all(np.array_equal(o, others[0]) for o in others)
        assert not np.array_equal(images[target], others[0])
    samples, metas = _task(photo_data, "SameOrNot")
    counts = Counter(s.response for s in samples)
    assert counts == {"same": 12, "different": 12}  # exactly balanced
    for sample in samples:
        a, b = _pixels(sample)
        assert np.array_equal(a, b) == (sample.response == "same")


def test_visible_edits_and_card(photo_data: Path) -> None:
    for name in ("SameOrNot", "OddOneOut"):
        _, metas = _task(photo_data, name)
        assert all(m["edit"]["change"] >= 8.0 for m in metas if m["edited_images"])
    card = json.loads((photo_data / "synthetic_vpgc.json").read_text())
    assert card["source"] == "photos" and card["geometry"]["grid"] == SIZE // PATCH
    assert card["photos"] == list(available_photos()) and card["base"] is None
    assert sorted(p.name for p in (photo_data / "test").iterdir()) == sorted(PHOTO_TASKS)


def test_deterministic_from_the_seed(tmp_path: Path) -> None:
    make_photo_vpgc(tmp_path / "a", _config(n_train=6))
    make_photo_vpgc(tmp_path / "b", _config(n_train=6))
    make_photo_vpgc(tmp_path / "c", _config(n_train=6, seed=6))
    assert directory_digest(tmp_path / "a") == directory_digest(tmp_path / "b")
    assert directory_digest(tmp_path / "a") != directory_digest(tmp_path / "c")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"region": "middle"}, "region must be one of"),
        ({"photos": ("astronaut", "lena")}, "not bundled with the installed scikit-image"),
        ({"photos": ("astronaut", "astronaut")}, "at least two distinct photos"),
        ({"n_train": 0}, "n_train must be >= 1"),
        ({"none_rate": 1.0}, "none_rate must be in"),
        ({"block": 0}, "block must be >= 1"),
    ],
)
def test_bad_config_is_a_clear_error(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _config(**changes)


def test_bad_geometry_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a multiple of patch_size"):
        make_photo_vpgc(tmp_path / "x", _config(image_size=60))
    with pytest.raises(ValueError, match=r"block must be in \[1, 8\]"):
        make_photo_vpgc(tmp_path / "x", _config(block=9))
    with pytest.raises(ValueError, match="needed without a base"):
        make_photo_vpgc(tmp_path / "x", PhotoVPGCConfig(region="random"))
    with pytest.raises(ValueError, match="needs the base LVLM"):
        make_photo_vpgc(tmp_path / "x", _config(region="attention"))
    assert not (tmp_path / "x").exists()
    with pytest.raises(ValueError, match="source must be one of"):
        VPGCDataConfig(source="video")


def test_default_source_by_image_size() -> None:
    def base(**vision) -> SimpleNamespace:
        config = SimpleNamespace(vision_config=SimpleNamespace(**vision))
        return SimpleNamespace(model=SimpleNamespace(config=config))

    assert default_source(base(image_size=32, patch_size=16)) == "world"
    assert default_source(base(image_size=224, patch_size=14)) == "photos"
    assert default_source(base(patch_size=14, spatial_merge_size=2)) == "photos"


@pytest.mark.slow
def test_a_tiny_blip2_trains_on_photos_with_attention_regions_and_evaluates(
    tmp_path: Path,
) -> None:
    from typer.testing import CliRunner

    from drum.cli.app import app
    from tests.lvlm.tiny_lvlms import build_tiny_blip2

    runner = CliRunner()
    base = build_tiny_blip2(tmp_path / "blip2", patch_size=8).path  # 4 x 4 patches
    adapter = tmp_path / "adapter"
    args = ["vpgc", "train", "--base", str(base), "--out", str(adapter), "--source", "photos",
            "--region", "attention", "--max-steps", "3", "--n-train", "3", "--batch-size", "4",
            "--num-heads", "2"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    card = json.loads((adapter / "vpgc_train.json").read_text())
    assert card["source"] == "photos" and card["steps"] == 3 and card["history"][-1]["loss"] > 0
    data = json.loads((tmp_path / "adapter.data" / "synthetic_vpgc.json").read_text())
    assert data["source"] == "photos" and data["config"]["region"] == "attention"
    assert data["geometry"] == {"image_size": 32, "patch_size": 8, "block": 1, "grid": 4}
    root = tmp_path / "demon"
    made = runner.invoke(app, ["demon", "make-builtin", "--out", str(root), "--n-train", "2",
                               "--n-test", "2"])  # fmt: skip
    assert made.exit_code == 0, made.output
    evaluate = ["demon", "eval", "--model", str(base), "--data", str(root / "test"), "--tasks",
                "WhichImage", "--max-new-tokens", "2", "--out", str(tmp_path / "e")]  # fmt: skip
    result = runner.invoke(app, [*evaluate, "--adapter", str(adapter)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "e" / "WhichImage" / "pred.json").is_file()
    bad = runner.invoke(app, ["vpgc", "train", "--base", str(base), "--out",
                              str(tmp_path / "x"), "--source", "video"])  # fmt: skip
    assert bad.exit_code == 2 and "source must be one of" in bad.output


def test_training_data_is_reused_only_for_the_same_config_and_base(tmp_path: Path) -> None:
    from drum.builtin.vpgc.photos import photo_training_data

    base = SimpleNamespace(fingerprint="base-1")
    folders = photo_training_data(base, tmp_path / "d", _config(n_train=2))
    assert [f.name for f in folders] == sorted(PHOTO_TASKS)
    card = tmp_path / "d" / "synthetic_vpgc.json"
    written = card.stat().st_mtime_ns
    photo_training_data(base, tmp_path / "d", _config(n_train=2))
    assert card.stat().st_mtime_ns == written  # reused
    photo_training_data(SimpleNamespace(fingerprint="base-2"), tmp_path / "d", _config(n_train=2))
    assert json.loads(card.read_text())["base"] == "base-2"  # another base: rewritten

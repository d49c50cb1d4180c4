"""Held-out tasks and VPG-C's edited pairs as DEMON tasks: readable, answers follow the
recorded scenes, pairs differ only in the small object, edits go where the rule says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from drum.builtin.blip2.data import (
    DATA_CARD,
    EditedPairsConfig,
    HeldoutConfig,
    corner_weights,
    least_attended_corners,
    make_edited_pairs,
    make_heldout_tasks,
    read_meta,
)
from drum.builtin.blip2.questions import ScenePool, forms_in
from drum.builtin.blip2.scenes import GRID, SMALL, TwoObjectScene, render
from drum.demon.format import read_demon_task
from drum.lvlm.hf import HFLVLM


def test_heldout_tasks_are_demon_tasks_whose_answers_are_the_scenes(tmp_path: Path) -> None:
    out = make_heldout_tasks(tmp_path / "h", HeldoutConfig(n_test=20, n_train=4))
    for form in forms_in("primary", "near", "far"):
        task = read_demon_task(out / "test" / form)
        assert len(task.samples) == 20 and len(read_demon_task(out / "train" / form).samples) == 4
        metas = read_meta(out / "test" / form)
        if form == "small_colour":
            assert [s.response for s in task.samples] == [
                m["scenes"][0]["small_colour"] for m in metas
            ]
    stamp = (out / DATA_CARD).stat().st_mtime_ns
    make_heldout_tasks(tmp_path / "h", HeldoutConfig(n_test=20, n_train=4))
    assert (out / DATA_CARD).stat().st_mtime_ns == stamp  # reused, not rewritten


def test_corner_weights_sum_each_corners_block() -> None:
    weights = torch.zeros(2, GRID * GRID)
    weights[0, 0] = 1.0  # top-left
    weights[1, GRID * GRID - 1] = 2.0  # bottom-right
    weights[1, GRID - 1] = 3.0  # top-right
    expected = torch.tensor([[1.0, 0, 0, 0], [0, 3.0, 0, 2.0]])
    assert torch.equal(corner_weights(weights), expected)


def test_edited_pairs_differ_only_in_the_small_object(tmp_path: Path) -> None:
    config = EditedPairsConfig(n_train=12, n_test=6, region="random")
    out = make_edited_pairs(tmp_path / "p", config)
    for split, n in (("train", 12), ("test", 6)):
        for form in forms_in("synthetic"):
            task = read_demon_task(out / split / form)
            assert len(task.samples) == n
            for sample, meta in zip(task.samples, read_meta(out / split / form), strict=True):
                first, second = (np.asarray(Image.open(p)) for p in sample.images)
                scenes = [TwoObjectScene.from_meta(m) for m in meta["scenes"]]
                small = (render(scenes[0])[1] == SMALL) | (render(scenes[1])[1] == SMALL)
                differ = np.any(first != second, axis=-1)
                assert differ.any() and not differ[~small].any()
    with pytest.raises(ValueError, match="needs the base"):
        make_edited_pairs(tmp_path / "q", EditedPairsConfig(n_train=2, n_test=2))


def test_attention_regions_put_the_small_object_where_the_qformer_looks_least(
    tiny_blip2_run: Path, tmp_path: Path
) -> None:
    base = HFLVLM(tiny_blip2_run / "stage_b")
    out = make_edited_pairs(tmp_path / "p", EditedPairsConfig(n_train=8, n_test=4), base)
    corners = least_attended_corners(base, ScenePool(2000, 8))
    metas = read_meta(out / "train" / "edit_attribute")
    pool = ScenePool(2000, 8)
    # Each question's first image is a base scene of the pool, moved to its chosen corner.
    for meta in metas:
        scene = TwoObjectScene.from_meta(meta["scenes"][0])
        index = next(
            i for i in range(pool.n) if pool.scene((i, None, None)).noise_seed == scene.noise_seed
        )
        assert scene.corner == corners[index]

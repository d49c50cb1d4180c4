"""Two-object scenes: deterministic, the small object where its corner says, an edit changes
only the edited object's pixels, patch labels follow the object map."""

from __future__ import annotations

import numpy as np
import pytest

from drum.builtin.blip2.scenes import (
    BIG,
    GRID,
    IMAGE_SIZE,
    PATCH,
    SMALL,
    patch_objects,
    render,
    sample_scene,
    small_centre,
)


def test_rendering_is_deterministic_and_places_the_small_object_in_its_corner() -> None:
    rng = np.random.default_rng(0)
    for corner in range(4):
        scene = sample_scene(rng, corner)
        pixels, objects = render(scene)
        again, _ = render(scene)
        assert np.array_equal(pixels, again) and pixels.shape == (IMAGE_SIZE, IMAGE_SIZE, 3)
        ys, xs = np.nonzero(objects == SMALL)
        assert ys.size > 60 and (objects == BIG).sum() > 300
        row, col = divmod(corner, 2)
        assert (ys.mean() < IMAGE_SIZE / 2) == (row == 0)
        assert (xs.mean() < IMAGE_SIZE / 2) == (col == 0)
        cy, cx = small_centre(scene)
        assert abs(ys.mean() + 0.5 - cy) < 2.5 and abs(xs.mean() + 0.5 - cx) < 2.5


@pytest.mark.parametrize("obj", ["big", "small"])
def test_an_edit_changes_only_the_edited_objects_pixels(obj: str) -> None:
    scene = sample_scene(np.random.default_rng(3))
    value = "red" if scene.value(obj, "colour") != "red" else "blue"
    edited = scene.edited(obj, "colour", value)
    (before, objects), (after, _) = render(scene), render(edited)
    changed = np.any(before != after, axis=-1)
    label = BIG if obj == "big" else SMALL
    assert changed.any() and not changed[objects != label].any()


def test_patch_labels_follow_the_object_map() -> None:
    objects = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.int64)
    objects[:PATCH, :PATCH] = SMALL  # patch 0: all small
    objects[PATCH : PATCH + 2, :PATCH] = BIG  # patch GRID: 16 big pixels
    objects[:3, PATCH : 2 * PATCH] = BIG  # patch 1: 24 big pixels ...
    objects[3:6, PATCH : 2 * PATCH] = SMALL  # ... and 24 small: the small object wins the tie
    objects[IMAGE_SIZE - 1, IMAGE_SIZE - 5 :] = SMALL  # last patch: 5 pixels, below the floor
    labels = patch_objects(objects)
    assert labels.shape == (GRID * GRID,)
    assert (labels[0], labels[1], labels[GRID], labels[-1]) == (SMALL, SMALL, BIG, 0)
    assert (labels[2:GRID] == 0).all()

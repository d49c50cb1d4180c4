"""Shipping the built-in BLIP-2: freezing refuses failed gates; the shipped copy is used only
for its own recipe and is checked file by file."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from drum.builtin.blip2.assets import (
    Blip2AssetError,
    freeze_builtin_blip2,
    shipped_builtin_blip2,
)
from drum.builtin.blip2.train import CARD_NAME
from tests.builtin.blip2.conftest import TINY


def test_freeze_refuses_a_run_whose_gates_failed(tiny_blip2_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_blip2_run, run)
    card = json.loads((run / CARD_NAME).read_text())
    card["passed"] = False
    card["gates"][0]["passed"] = False
    (run / CARD_NAME).write_text(json.dumps(card))
    with pytest.raises(Blip2AssetError, match=card["gates"][0]["name"]):
        freeze_builtin_blip2(run, tmp_path / "assets")
    assert not (tmp_path / "assets").exists()


def test_the_shipped_copy_matches_its_recipe_and_its_files(
    tiny_blip2_run: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_blip2_run, run)
    card = json.loads((run / CARD_NAME).read_text())
    card["passed"] = True  # the tiny recipe cannot pass; what is frozen is the point here
    (run / CARD_NAME).write_text(json.dumps(card))
    assets = freeze_builtin_blip2(run, tmp_path / "assets")
    shipped = shipped_builtin_blip2(TINY, assets)
    assert shipped == {"stage_a": assets / "stage_a", "stage_b": assets / "stage_b"}
    assert shipped_builtin_blip2(replace(TINY, seed=1), assets) is None  # another recipe
    (assets / "stage_b" / "model.safetensors").write_bytes(b"not the model")
    with pytest.raises(Blip2AssetError, match="drum vpgc train-blip2"):
        shipped_builtin_blip2(TINY, assets)

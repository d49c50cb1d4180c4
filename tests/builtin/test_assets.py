"""Shipped built-in models: frozen with a manifest, used only for their world, hash-checked."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from drum.builtin.assets import AssetError, freeze_builtin_models, verified_assets
from drum.builtin.world.generate import WorldConfig, load_world_card


@pytest.fixture()
def frozen(tiny_world: Path, tiny_clip_dir: Path, tmp_path: Path) -> Path:
    # Any two model directories do: the manifest covers whatever files they hold. The LVLM
    # side needs the card whose recorded config gives the command that reproduces it.
    lvlm = tmp_path / "lvlm"
    shutil.copytree(tiny_clip_dir, lvlm)
    card = {"identity": {"config": {"max_steps": 10, "max_seconds": 5.0, "seed": 3}}}
    (lvlm / "drum_lvlm.json").write_text(json.dumps(card))
    return freeze_builtin_models(tiny_world, tiny_clip_dir, lvlm, tmp_path / "assets")


def test_manifest_says_how_to_reproduce_the_lvlm(frozen: Path) -> None:
    manifest = json.loads((frozen / "MANIFEST.json").read_text())
    (train,) = [line for line in manifest["reproduce"] if "lvlm train-builtin" in line]
    assert train.endswith("--max-steps 10 --max-seconds 5 --seed 3")


def _world_config(tiny_world: Path) -> WorldConfig:
    return WorldConfig(**load_world_card(tiny_world)["config"])


def test_assets_are_used_for_their_own_world_only(frozen: Path, tiny_world: Path) -> None:
    config = _world_config(tiny_world)
    assets = verified_assets(config, frozen)
    assert assets is not None and (assets["lvlm"] / "config.json").is_file()
    other = WorldConfig(**{**config.__dict__, "seed": config.seed + 1})
    assert verified_assets(other, frozen) is None


def test_a_changed_file_is_refused(frozen: Path, tiny_world: Path) -> None:
    weights = frozen / "lvlm" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")
    with pytest.raises(AssetError, match="model.safetensors: SHA-256 differs"):
        verified_assets(_world_config(tiny_world), frozen)


def test_no_manifest_means_no_assets(tmp_path: Path, tiny_world: Path) -> None:
    assert verified_assets(_world_config(tiny_world), tmp_path) is None

"""Shipped built-in models: frozen with a manifest, used only for their world, hash-checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from drum.data.world.generate import WorldConfig, load_world_card
from drum.pipelines.builtin_models import AssetError, freeze_builtin_models, verified_assets


@pytest.fixture()
def frozen(tiny_world: Path, tiny_clip_dir: Path, tmp_path: Path) -> Path:
    # Any two model directories do: the manifest covers whatever files they hold.
    return freeze_builtin_models(tiny_world, tiny_clip_dir, tiny_clip_dir, tmp_path / "assets")


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

"""The built-in CLIP trainer: a short run saves an embedder with its card, a current one is
not retrained, and the shipped embedder's card (written before ``Checkpointer``) is current."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from drum.builtin.assets import ASSETS_DIR
from drum.builtin.embedder import (
    CARD_NAME,
    BuiltinEmbedderConfig,
    builtin_is_current,
    train_builtin_embedder,
)
from drum.embed.hf import HFDualEncoder

TINY = BuiltinEmbedderConfig(
    vision_hidden=32, vision_layers=2, vision_heads=2, text_hidden=32, projection_dim=16
)


def test_short_training_saves_an_embedder_and_is_skipped_when_current(
    tiny_world: Path, tmp_path: Path
) -> None:
    config = BuiltinEmbedderConfig(**{**asdict(TINY), "steps": 3, "batch_size": 16})
    out = train_builtin_embedder(tiny_world, tmp_path / "embedder", config, progress=False)
    card = json.loads((out / CARD_NAME).read_text())
    assert list(card)[:2] == ["config", "world"] and card["config"] == asdict(config)
    assert "val_zero_shot_accuracy" in card
    assert sorted(p.name for p in tmp_path.iterdir()) == ["embedder"]
    stamp = (out / CARD_NAME).stat().st_mtime_ns
    train_builtin_embedder(tiny_world, out, config, progress=False)
    assert (out / CARD_NAME).stat().st_mtime_ns == stamp
    reseeded = BuiltinEmbedderConfig(**{**asdict(config), "seed": 1})
    assert not builtin_is_current(out, reseeded, tiny_world)
    HFDualEncoder(out)


def test_the_shipped_embedder_is_current_for_its_world(
    shipped_world: Path, tiny_world: Path
) -> None:
    assert builtin_is_current(ASSETS_DIR / "embedder", BuiltinEmbedderConfig(), shipped_world)
    assert not builtin_is_current(ASSETS_DIR / "embedder", BuiltinEmbedderConfig(), tiny_world)

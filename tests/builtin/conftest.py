"""A world card of the world the shipped models were trained on (the card alone: no images)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drum.builtin.assets import ASSETS_DIR, MANIFEST


@pytest.fixture()
def shipped_world(tiny_world: Path, tmp_path: Path) -> Path:
    card = json.loads((tiny_world / "world.json").read_text())
    card["config"] = json.loads((ASSETS_DIR / MANIFEST).read_text())["world_config"]
    world = tmp_path / "shipped_world"
    world.mkdir()
    (world / "world.json").write_text(json.dumps(card))
    return world

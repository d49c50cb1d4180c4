"""The built-in CLIP trainer: a short run saves an embedder with its card, a current one is
not retrained, a killed one resumes to the same weights, and the shipped embedder's card
(written before ``Checkpointer``) is current."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from drum.builtin.assets import ASSETS_DIR
from drum.builtin.embedder import (
    CARD_NAME,
    BuiltinEmbedderConfig,
    embedder_checkpointer,
    train_builtin_embedder,
)
from drum.embed.hf import HFDualEncoder
from drum.utils.checkpoint import Checkpointer
from tests.killed import killed_after_checkpoint

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
    assert not embedder_checkpointer(out, reseeded, tiny_world).finished()
    HFDualEncoder(out)


def test_the_shipped_embedder_is_current_for_its_world(
    shipped_world: Path, tiny_world: Path
) -> None:
    shipped = ASSETS_DIR / "embedder"
    assert embedder_checkpointer(shipped, BuiltinEmbedderConfig(), shipped_world).finished()
    assert not embedder_checkpointer(shipped, BuiltinEmbedderConfig(), tiny_world).finished()


def test_a_killed_run_resumes_to_the_uninterrupted_weights(
    tiny_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = BuiltinEmbedderConfig(**{**asdict(TINY), "steps": 6, "batch_size": 16})
    whole = train_builtin_embedder(
        tiny_world, tmp_path / "a", config, progress=False, checkpoint_every=2
    )

    # Killed right after the step-4 checkpoint.
    with pytest.raises(KeyboardInterrupt), killed_after_checkpoint(2):
        train_builtin_embedder(
            tiny_world, tmp_path / "b", config, progress=False, checkpoint_every=2
        )
    assert [p.name for p in (tmp_path / ".b.checkpoint").iterdir()] == ["step_4"]
    saved: list[int] = []
    save = Checkpointer.save

    def recording_save(self: Checkpointer, step: int, *args, **kwargs):  # type: ignore[no-untyped-def]
        saved.append(step)
        return save(self, step, *args, **kwargs)

    monkeypatch.setattr(Checkpointer, "save", recording_save)
    resumed = train_builtin_embedder(
        tiny_world, tmp_path / "b", config, progress=False, checkpoint_every=2
    )
    # Went on from step 4 (the last step is not checkpointed); a restart would save 2 and 4.
    assert saved == []
    a, b = load_file(whole / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    card = json.loads((resumed / CARD_NAME).read_text())
    assert card["steps"] == 6 and card["stop_reason"] == "max_steps"

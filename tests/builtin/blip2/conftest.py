"""A tiny built-in BLIP-2 trained through all three stages once per session (a few seconds:
the recipe's shapes with a handful of steps and scenes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from drum.builtin.blip2.model import Blip2Architecture
from drum.builtin.blip2.train import BuiltinBlip2Config

TINY = BuiltinBlip2Config(
    architecture=Blip2Architecture(lm_hidden=64, lm_layers=2, max_positions=192),
    train_scenes=60,
    test_scenes=40,
    vision_steps=10,
    stage_a_steps=12,
    stage_b_steps=6,
    batch_size=8,
    eval_every=6,
    eval_questions=8,
    checkpoint_every=6,
)


@pytest.fixture(scope="session")
def tiny_blip2_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from drum.builtin.blip2.train import train_builtin_blip2

    out = tmp_path_factory.mktemp("builtin-blip2")
    train_builtin_blip2(out, TINY, progress=False)
    return out

"""``drum lvlm train-builtin``: the config's defaults, and at most two torch threads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from drum.cli.main import app


@pytest.fixture
def threads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The thread counts the command sets (recorded, not applied)."""
    calls: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    return calls


def test_train_builtin_uses_the_config_defaults_and_two_threads(
    monkeypatch: pytest.MonkeyPatch, threads: list[int], tmp_path: Path
) -> None:
    import drum.builtin.lvlm.train as train
    from drum.builtin.lvlm.train import CARD_NAME, BuiltinLVLMConfig

    seen: dict[str, Any] = {}

    def fake_train(world: Path, embedder: Path, out: Path, config: BuiltinLVLMConfig) -> Path:
        seen["config"] = config
        out.mkdir(parents=True)
        card = {"steps": 1, "train_seconds": 0.1, "stop_reason": "test", "final_probes": {}}
        (out / CARD_NAME).write_text(json.dumps(card))
        return out

    monkeypatch.setattr(train, "train_builtin_lvlm", fake_train)
    result = CliRunner().invoke(app, ["lvlm", "train-builtin", "--out", str(tmp_path / "lvlm")])
    assert result.exit_code == 0, result.output
    assert seen["config"] == BuiltinLVLMConfig()  # max_seconds 420, not a retyped 1800
    assert len(threads) == 1 and 1 <= threads[0] <= 2

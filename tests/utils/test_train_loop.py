"""The one training loop: history, stopping, checkpoint cadence, exact resume."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from drum.utils.checkpoint import Checkpointer
from drum.utils.schedule import adamw_warmup_cosine, clipped_step
from drum.utils.train_loop import LoopConfig, LoopResult, run_training

IDENTITY = {"run": "tiny"}


class Tiny:
    """A linear model fitted on noisy draws: every step draws from a numpy and a torch
    generator and from torch's global one, so a resume that misses one state shows."""

    def __init__(self, out_dir: Path, max_steps: int = 10) -> None:
        torch.manual_seed(0)
        self.model = torch.nn.Linear(3, 1)
        self.optimizer, self.scheduler = adamw_warmup_cosine(
            list(self.model.parameters()), 0.05, 0.01, max_steps, 2
        )
        self.rng = np.random.default_rng(3)
        self.generator = torch.Generator().manual_seed(4)
        self.checkpointer = Checkpointer(out_dir, IDENTITY, "card.json")
        self.steps: list[int] = []

    def step(self, index: int) -> float:
        self.steps.append(index)
        x = torch.randn(8, 3, generator=self.generator) + float(self.rng.normal())
        y = x.sum(dim=1, keepdim=True) + 0.1 * torch.randn(8, 1)
        loss = torch.nn.functional.mse_loss(self.model(x), y)
        clipped_step(loss, self.optimizer, self.scheduler, self.model.parameters())
        return loss.item()

    def run(self, config: LoopConfig, **kwargs: Any) -> LoopResult:
        objects = {"model": self.model, "optimizer": self.optimizer, "scheduler": self.scheduler}
        generators = {"rng": self.rng, "generator": self.generator}
        return run_training(
            self.step, self.checkpointer, objects, config, generators=generators,
            progress=False, **kwargs,
        )  # fmt: skip


def test_history_entries_hold_the_mean_loss_and_the_evaluation(tmp_path: Path) -> None:
    tiny = Tiny(tmp_path / "out")
    losses: list[float] = []
    step = tiny.step

    def recorded(index: int) -> float:
        losses.append(step(index))
        return losses[-1]

    tiny.step = recorded  # type: ignore[method-assign]
    result = tiny.run(LoopConfig(max_steps=10, log_every=4), evaluate=lambda done: {"x": done})
    assert [h["step"] for h in result.history] == [4, 8, 10]
    assert [h["x"] for h in result.history] == [4, 8, 10]
    assert result.history[0]["loss"] == float(np.mean(losses[:4]))
    assert result.history[-1]["loss"] == float(np.mean(losses[6:]))
    assert (result.steps, result.stop_reason) == (10, "max_steps")
    assert tiny.steps == list(range(10))
    summary = result.summary()
    assert summary["steps"] == 10 and summary["stop_reason"] == "max_steps"


def test_stop_when_ends_the_run_at_a_history_entry(tmp_path: Path) -> None:
    result = Tiny(tmp_path / "out").run(
        LoopConfig(max_steps=10, log_every=3),
        evaluate=lambda done: {"passed": done >= 6},
        stop_when=lambda entry: entry["passed"],
        stop_reason="probes_passed",
    )
    assert (result.steps, result.stop_reason) == (6, "probes_passed")
    assert [h["step"] for h in result.history] == [3, 6]


def test_the_time_budget_stops_after_the_step_that_spends_it_with_an_entry(
    tmp_path: Path,
) -> None:
    result = Tiny(tmp_path / "out").run(LoopConfig(max_steps=10, max_seconds=1e-9, log_every=5))
    assert (result.steps, result.stop_reason) == (1, "max_seconds")
    assert [h["step"] for h in result.history] == [1]


def test_checkpoints_at_the_cadence_but_not_at_the_last_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved: list[int] = []
    original = Checkpointer.save

    def save(self: Checkpointer, step: int, *args: Any, **kwargs: Any) -> Path:
        saved.append(step)
        return original(self, step, *args, **kwargs)

    monkeypatch.setattr(Checkpointer, "save", save)
    seen: list[int] = []
    Tiny(tmp_path / "out").run(LoopConfig(max_steps=6, checkpoint_every=2), on_step=seen.append)
    assert saved == [2, 4]
    assert seen == [1, 2, 3, 4, 5, 6]


def test_a_killed_run_resumes_to_the_uninterrupted_weights_and_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = LoopConfig(max_steps=10, checkpoint_every=3, log_every=2)
    whole = Tiny(tmp_path / "whole")
    expected = whole.run(config)

    def die_at_step_8(done: int) -> None:
        if done == 8:  # after the step-6 checkpoint, two steps lost
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Tiny(tmp_path / "resumed").run(config, on_step=die_at_step_8)
    resumed = Tiny(tmp_path / "resumed")
    result = resumed.run(config)
    assert resumed.steps == [6, 7, 8, 9]
    for a, b in zip(whole.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in expected.history]
    assert [{k: v for k, v in h.items() if k != "seconds"} for h in result.history] == strip
    assert result.steps == 10


def test_a_checkpoint_the_loop_did_not_write_is_ignored(tmp_path: Path) -> None:
    tiny = Tiny(tmp_path / "out")
    objects = {"model": tiny.model, "optimizer": tiny.optimizer, "scheduler": tiny.scheduler}
    tiny.checkpointer.save(1, objects, {"history": []})  # an older trainer's: no "elapsed"
    tiny.run(LoopConfig(max_steps=3))
    assert tiny.steps == [0, 1, 2]


@pytest.mark.parametrize(
    "kwargs",
    [{"max_steps": 0}, {"checkpoint_every": 0}, {"log_every": 0}, {"max_seconds": 0.0}],
)
def test_config_refuses_an_empty_budget_or_cadence(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        LoopConfig(**{"max_steps": 5, **kwargs})


def test_config_defaults_to_no_time_budget() -> None:
    assert LoopConfig(max_steps=1).max_seconds == math.inf

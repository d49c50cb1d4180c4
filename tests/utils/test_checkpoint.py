"""Checkpointer: identity, save/latest round trip with exact RNG, torn checkpoints, finish."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from drum.utils import checkpoint as checkpoint_module
from drum.utils.checkpoint import Checkpointer, CheckpointMismatch, card_matches
from tests.utils.kills import KillAt, Killed, count_steps

IDENTITY = {"config": {"lr": 0.1, "layers": [2, 2]}, "data": "abc123"}


class Run:
    """A tiny training run: a linear model, AdamW, a LambdaLR and generators of every kind."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.model = torch.nn.Linear(3, 2)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=0.1)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: 1 / (1 + s))
        self.rng = np.random.default_rng(7)
        self.generator = torch.Generator().manual_seed(7)

    @property
    def objects(self) -> dict[str, object]:
        return {"model": self.model, "optimizer": self.optimizer, "scheduler": self.scheduler}

    @property
    def generators(self) -> dict[str, np.random.Generator | torch.Generator]:
        return {"rng": self.rng, "generator": self.generator}

    def step(self) -> list[float]:
        """One optimiser step on random data; returns one draw from each generator."""
        x = torch.randn(4, 3) + torch.rand(4, 3, generator=self.generator)
        loss = self.model(x).pow(2).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        return [random.random(), float(np.random.rand()), float(self.rng.random())]


def _checkpointer(tmp_path: Path, identity: dict = IDENTITY, **kwargs) -> Checkpointer:
    return Checkpointer(tmp_path / "out", identity, "card.json", **kwargs)


def test_resume_restores_weights_optimiser_and_every_generator(tmp_path: Path) -> None:
    uninterrupted = Run()
    for _ in range(3):
        uninterrupted.step()
    checkpointer = _checkpointer(tmp_path)
    checkpointer.save(3, uninterrupted.objects, {"history": [1.5]}, uninterrupted.generators)
    expected = [uninterrupted.step() for _ in range(2)]

    # A fresh process: everything is rebuilt from the seeds, then the checkpoint is loaded.
    random.seed(99)
    np.random.seed(99)
    resumed = Run()
    checkpoint = checkpointer.latest()
    assert checkpoint is not None
    assert checkpoint.step == 3 and checkpoint.extra == {"history": [1.5]}
    checkpoint.restore(resumed.objects, resumed.generators)
    assert [resumed.step() for _ in range(2)] == expected
    for a, b in zip(uninterrupted.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert resumed.scheduler.last_epoch == uninterrupted.scheduler.last_epoch == 5


def test_restore_refuses_other_objects(tmp_path: Path) -> None:
    run = Run()
    checkpointer = _checkpointer(tmp_path)
    checkpointer.save(1, run.objects, generators=run.generators)
    checkpoint = checkpointer.latest()
    assert checkpoint is not None
    with pytest.raises(KeyError, match="optimizer"):
        checkpoint.restore({"model": run.model})


def test_only_the_newest_checkpoint_is_kept(tmp_path: Path) -> None:
    run = Run()
    checkpointer = _checkpointer(tmp_path)
    for step in (2, 4):
        run.step()
        checkpointer.save(step, run.objects)
    assert [p.name for p in checkpointer.directory.iterdir()] == ["step_4"]
    checkpoint = checkpointer.latest()
    assert checkpoint is not None and checkpoint.step == 4


def test_another_runs_checkpoint_is_ignored_and_replaced_when_restarting(tmp_path: Path) -> None:
    run = Run()
    _checkpointer(tmp_path, {**IDENTITY, "data": "other"}).save(10, run.objects)
    checkpointer = _checkpointer(tmp_path)
    assert checkpointer.latest() is None
    checkpointer.save(2, run.objects)
    # The other run's later step must not shadow this run's checkpoint.
    assert [p.name for p in checkpointer.directory.iterdir()] == ["step_2"]
    checkpoint = checkpointer.latest()
    assert checkpoint is not None and checkpoint.step == 2


def test_another_runs_checkpoint_or_card_raises_when_asked(tmp_path: Path) -> None:
    run = Run()
    other = _checkpointer(tmp_path, {**IDENTITY, "data": "other"})
    other.save(1, run.objects)
    checkpointer = _checkpointer(tmp_path, on_mismatch="raise")
    with pytest.raises(CheckpointMismatch, match=r"differs in \['data'\]"):
        checkpointer.latest()
    with other.finish({}):
        pass
    with pytest.raises(CheckpointMismatch, match="card.json"):
        checkpointer.finished()
    assert not _checkpointer(tmp_path).finished()  # "restart": another run's output is stale


def test_a_torn_checkpoint_is_ignored(tmp_path: Path) -> None:
    run = Run()
    checkpointer = _checkpointer(tmp_path)
    checkpointer.save(2, run.objects)
    # Leftovers of a save killed before its rename, and a later folder missing its state file.
    (checkpointer.directory / ".step_4.abcd").mkdir()
    (checkpointer.directory / ".step_4.abcd" / "meta.json").write_text("{")
    torn = checkpointer.directory / "step_6"
    torn.mkdir()
    (torn / "meta.json").write_text(json.dumps({"identity": IDENTITY, "step": 6, "extra": {}}))
    checkpoint = checkpointer.latest()
    assert checkpoint is not None and checkpoint.step == 2
    (checkpointer.directory / "step_2" / "state.pt").unlink()
    assert checkpointer.latest() is None


def test_a_save_killed_midway_leaves_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = Run()
    checkpointer = _checkpointer(tmp_path)
    checkpointer.save(2, run.objects)

    def dies_while_writing(obj: object, handle) -> None:  # type: ignore[no-untyped-def]
        handle.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint_module.torch, "save", dies_while_writing)
    with pytest.raises(KeyboardInterrupt):
        checkpointer.save(4, run.objects)
    monkeypatch.undo()
    assert [p.name for p in checkpointer.directory.iterdir()] == ["step_2"]
    checkpoint = checkpointer.latest()
    assert checkpoint is not None and checkpoint.step == 2


def test_finish_replaces_the_output_whole_and_removes_the_checkpoints(tmp_path: Path) -> None:
    checkpointer = _checkpointer(tmp_path)
    checkpointer.out_dir.mkdir()
    (checkpointer.out_dir / "old.txt").write_text("old")
    checkpointer.save(1, Run().objects)
    with pytest.raises(RuntimeError), checkpointer.finish({"loss": 0.5}) as staging:
        (staging / "weights.bin").write_bytes(b"half")
        raise RuntimeError("crash while saving the model")
    assert [p.name for p in checkpointer.out_dir.iterdir()] == ["old.txt"]
    assert checkpointer.latest() is not None  # a failed finish can still resume
    assert not checkpointer.finished()

    with checkpointer.finish({"loss": 0.5}) as staging:
        (staging / "weights.bin").write_bytes(b"whole")
    assert sorted(p.name for p in checkpointer.out_dir.iterdir()) == ["card.json", "weights.bin"]
    card = json.loads((checkpointer.out_dir / "card.json").read_text())
    assert list(card) == ["identity", "loss"] and card["identity"] == IDENTITY
    assert not checkpointer.directory.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging left behind
    assert checkpointer.finished()


def test_identity_at_the_cards_top_level(tmp_path: Path) -> None:
    checkpointer = _checkpointer(tmp_path, identity_key=None)
    with checkpointer.finish({"loss": 0.5}):
        pass
    card = json.loads((checkpointer.out_dir / "card.json").read_text())
    assert card == {**IDENTITY, "loss": 0.5} and list(card) == ["config", "data", "loss"]
    assert checkpointer.finished()
    assert not _checkpointer(tmp_path, {**IDENTITY, "data": "x"}, identity_key=None).finished()


# ------------------------------------------------- kills while checkpoints are saved or deleted
def _leftovers(tmp_path: Path) -> list[str]:
    """Everything beside and inside the output that is not a finished output or a checkpoint."""
    names = [p.name for p in tmp_path.iterdir() if p.name not in ("out", ".out.checkpoint")]
    checkpoints = tmp_path / ".out.checkpoint"
    if checkpoints.is_dir():
        names += [p.name for p in checkpoints.iterdir() if not p.name.startswith("step_")]
    return names


def _save_4(checkpointer: Checkpointer) -> None:
    run = Run()
    run.step()
    checkpointer.save(4, run.objects, {"history": [4]}, run.generators)


def test_a_save_killed_at_any_step_resumes_from_a_whole_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpointer = _checkpointer(tmp_path / "run")
    checkpointer.save(2, Run().objects, {"history": [2]}, Run().generators)
    counted = _checkpointer(tmp_path / "count")
    counted.save(2, Run().objects)
    steps = count_steps(monkeypatch, lambda: _save_4(counted))
    # Two files into staging, staging into place, step_2 renamed aside, then deleted.
    assert steps == 5
    for step in range(1, steps + 1):
        kill = KillAt(monkeypatch, step)
        with pytest.raises(Killed):
            _save_4(checkpointer)
        kill.undo()
        # The next run: leftovers cleaned up, a whole checkpoint (the old or the new) loaded.
        resumed = _checkpointer(tmp_path / "run").latest()
        assert resumed is not None and resumed.step in (2, 4)
        assert resumed.extra == {"history": [resumed.step]}
        resumed.restore(Run().objects, Run().generators)
        assert _leftovers(tmp_path / "run") == []
        assert all((p / "state.pt").is_file() for p in checkpointer.directory.iterdir())
        # ... and carries on: its next save leaves exactly that checkpoint.
        run = Run()
        checkpointer.save(2, run.objects, {"history": [2]}, run.generators)
        assert [p.name for p in checkpointer.directory.iterdir()] == ["step_2"]


def test_a_finish_killed_at_any_step_leaves_the_old_or_the_new_output_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def finish(checkpointer: Checkpointer) -> None:
        with checkpointer.finish({"loss": 0.5}) as staging:
            (staging / "weights.bin").write_text("new")

    def start(root: Path) -> Checkpointer:
        checkpointer = _checkpointer(root)
        (root / "out").mkdir(parents=True, exist_ok=True)
        (root / "out" / "weights.bin").write_text("old")
        checkpointer.save(2, Run().objects)
        return checkpointer

    counted = start(tmp_path / "count")
    # The card into staging, old output aside, staging into place, old output deleted,
    # checkpoints renamed aside, then deleted.
    assert count_steps(monkeypatch, lambda: finish(counted)) == 6
    steps = 6
    for step in range(1, steps + 1):
        root = tmp_path / str(step)
        checkpointer = start(root)
        kill = KillAt(monkeypatch, step)
        with pytest.raises(Killed):
            finish(checkpointer)
        kill.undo()
        rerun = _checkpointer(root)
        if rerun.finished():  # the new output is whole, and this run's checkpoints are gone
            assert (root / "out" / "weights.bin").read_text() == "new"
            assert not rerun.directory.exists()
        else:  # the old output is whole and training can resume, then finish
            assert (root / "out" / "weights.bin").read_text() == "old"
            checkpoint = rerun.latest()
            assert checkpoint is not None and checkpoint.step == 2
            finish(rerun)
            assert rerun.finished() and not rerun.directory.exists()
        assert sorted(p.name for p in root.iterdir()) == ["out"]
        assert sorted(p.name for p in (root / "out").iterdir()) == ["card.json", "weights.bin"]


def test_a_half_deleted_checkpoint_is_never_loaded_and_is_removed(tmp_path: Path) -> None:
    checkpointer = _checkpointer(tmp_path)
    checkpointer.save(2, Run().objects)
    # What an older version's in-place deletion, killed midway, left: step_4 without its state.
    torn = checkpointer.directory / "step_4"
    torn.mkdir()
    (torn / "meta.json").write_text(json.dumps({"identity": IDENTITY, "step": 4, "extra": {}}))
    checkpoint = checkpointer.latest()
    assert checkpoint is not None and checkpoint.step == 2
    assert [p.name for p in checkpointer.directory.iterdir()] == ["step_2"]


def test_a_finished_run_deletes_only_its_own_leftover_checkpoints(tmp_path: Path) -> None:
    checkpointer = _checkpointer(tmp_path)
    with checkpointer.finish({}):
        pass
    # As if a finish had been killed before deleting its checkpoints, beside another run's.
    checkpointer.save(5, Run().objects)
    other = checkpointer.directory / "step_3"
    shutil.copytree(checkpointer.directory / "step_5", other)
    meta = {"identity": {**IDENTITY, "data": "other"}, "step": 3, "extra": {}}
    (other / "meta.json").write_text(json.dumps(meta))
    assert checkpointer.finished()
    assert [p.name for p in checkpointer.directory.iterdir()] == ["step_3"]
    other.rename(checkpointer.directory / "step_5")
    (checkpointer.directory / "step_5" / "meta.json").write_text(
        json.dumps({**meta, "identity": IDENTITY})
    )
    assert checkpointer.finished()
    assert not checkpointer.directory.exists()


def test_card_matches_compares_the_expected_keys_as_json_reads_them(tmp_path: Path) -> None:
    card = tmp_path / "card.json"
    assert not card_matches(card, {"config": {}})  # no card: not current
    card.write_text(json.dumps({"config": {"sizes": [1, 2]}, "base": "b", "other": 1}))
    assert card_matches(card, {"config": {"sizes": (1, 2)}, "base": "b"})  # tuples are lists
    assert not card_matches(card, {"config": {"sizes": [1, 3]}, "base": "b"})
    assert card_matches(card, {"missing": None})  # a key the card lacks reads as None
    assert not card_matches(card, {"missing": 0})
    card.write_text("[]")
    assert not card_matches(card, {"config": {}})

"""Resumable training into one output directory: run identity, checkpoints, atomic finish.

A trainer that writes its model to ``out_dir`` uses one ``Checkpointer``::

    checkpointer = Checkpointer(out_dir, identity, "card.json")
    if checkpointer.finished():  # out_dir already holds this very run's model
        return out_dir
    ...  # build model, optimizer, scheduler, generators (seeded as for a fresh run)
    objects = {"model": model, "optimizer": optimizer, "scheduler": scheduler}
    step = 0
    if (resumed := checkpointer.latest()) is not None:
        resumed.restore(objects, generators={"data": rng})
        step = resumed.step
    while step < total:
        ...
        step += 1
        if step % every == 0:
            checkpointer.save(step, objects, extra={"history": history}, generators={"data": rng})
    with checkpointer.finish(card) as staging:
        model.save_pretrained(staging)

What it promises:

* **Identity.** ``identity`` is a JSON-able dict that says which run this is (config, data
  digest, world identity...). A checkpoint or an output card of another identity is never
  resumed from or taken for finished: with ``on_mismatch="restart"`` it is ignored (training
  starts afresh and replaces it), with ``"raise"`` it raises ``CheckpointMismatch`` naming the
  keys that differ.
* **Atomic checkpoints.** Each ``save`` writes a folder ``step_<step>`` (``state.pt``: the
  objects' state dicts and every RNG state, by ``torch.save``; ``meta.json``: identity, step
  and the extra JSON state) in a staging directory that is renamed into place when complete;
  only then are older checkpoints removed, each renamed aside before it is deleted
  (``remove_directory``). A run killed at any moment leaves the previous checkpoint, or the
  new one, whole; an incomplete folder is never loaded.
* **Clean-up of leftovers.** ``finished`` and ``latest`` (a run's first calls) first clean up
  what killed runs left in this run's places: an ``out_dir`` or checkpoint whose replacement
  was killed between its two renames gets its old content back, and staging, set-aside and
  trash folders and incomplete checkpoint folders are deleted (``clean_up``).
* **Exact resume.** ``latest`` loads the newest complete checkpoint (``torch.load`` with
  ``weights_only=True``); ``Checkpoint.restore`` loads the state dicts into the objects and
  puts back Python's, NumPy's and torch's global generators (CUDA's too when in use) and the
  named ``np.random.Generator`` / ``torch.Generator`` objects, so the next random draw equals
  the one of an uninterrupted run.
* **Atomic finish.** ``finish`` yields a staging directory for the final files, writes the
  card (the identity first) into it, swaps it onto ``out_dir`` (``atomic_directory``) and
  only then deletes the checkpoints (those a killed finish left, ``finished`` deletes: the
  ones of this identity).

Checkpoints live beside the output, in ``<out_dir.parent>/.<out_dir.name>.checkpoint``. The
helper knows nothing of any model: anything with ``state_dict``/``load_state_dict`` can be
checkpointed.
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch

from drum.utils.io import (
    atomic_directory,
    atomic_open,
    atomic_write_json,
    leftover_target,
    recover_directory,
    remove_directory,
)

STATE_FILE = "state.pt"
META_FILE = "meta.json"
FOLDER_PREFIX = "step_"
RandomGenerator = np.random.Generator | torch.Generator


class Stateful(Protocol):
    """What a checkpoint can hold: a model, an optimizer, a learning-rate scheduler..."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: dict[str, Any], /) -> Any: ...


class CheckpointMismatch(ValueError):
    """A checkpoint or output directory belongs to another run (another identity)."""


def capture_rng(generators: Mapping[str, RandomGenerator] | None = None) -> dict[str, Any]:
    """The states of the global generators and of ``generators``, in ``torch.load``-safe types."""
    numpy_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": random.getstate(),
        # The key is an ndarray, which weights_only loading refuses; a list of ints is allowed.
        "numpy": {
            **numpy_state,
            "state": {**numpy_state["state"], "key": numpy_state["state"]["key"].tolist()},
        },
        "torch": torch.get_rng_state(),
        "generators": {
            name: g.get_state() if isinstance(g, torch.Generator) else g.bit_generator.state
            for name, g in (generators or {}).items()
        },
    }
    # Asking for CUDA's states would initialise CUDA in a run that never used it.
    if torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(
    state: Mapping[str, Any], generators: Mapping[str, RandomGenerator] | None = None
) -> None:
    """Put back the states ``capture_rng`` took, into the globals and into ``generators``."""
    random.setstate(state["python"])
    numpy_state = state["numpy"]
    key = np.asarray(numpy_state["state"]["key"], dtype=np.uint32)
    np.random.set_state({**numpy_state, "state": {**numpy_state["state"], "key": key}})
    torch.set_rng_state(state["torch"])
    # A run resumed without a GPU has no CUDA generators to put back.
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for name, generator in (generators or {}).items():
        if name not in state["generators"]:
            raise KeyError(f"checkpoint holds no generator {name!r}: {sorted(state['generators'])}")
        if isinstance(generator, torch.Generator):
            generator.set_state(state["generators"][name])
        else:
            generator.bit_generator.state = state["generators"][name]


@dataclass(frozen=True)
class Checkpoint:
    """One saved training state, as ``Checkpointer.latest`` loads it.

    Attributes:
        step: the progress counter it was saved at (a step, an epoch: the trainer's choice).
        state_dicts: name -> state dict of each saved object.
        extra: the JSON state saved with it (history, elapsed time...).
        rng: every generator's state (``capture_rng``).
    """

    step: int
    state_dicts: dict[str, dict[str, Any]]
    extra: dict[str, Any]
    rng: dict[str, Any]

    def restore(
        self,
        objects: Mapping[str, Stateful],
        generators: Mapping[str, RandomGenerator] | None = None,
    ) -> None:
        """Load each object's state dict and every generator's state (see ``restore_rng``)."""
        if set(objects) != set(self.state_dicts):
            raise KeyError(f"checkpoint holds {sorted(self.state_dicts)}, got {sorted(objects)}")
        for name, obj in objects.items():
            obj.load_state_dict(self.state_dicts[name])
        restore_rng(self.rng, generators)


@dataclass(frozen=True)
class Checkpointer:
    """Checkpoints, resume and the final write of one training run (see the module docstring).

    Attributes:
        out_dir: where the finished model goes.
        identity: JSON-able dict that identifies the run; compared as loaded from JSON.
        card_name: the JSON card ``finish`` writes into ``out_dir`` (and ``finished`` reads).
        identity_key: the card's key for the identity; ``None`` writes the identity's own keys
            at the card's top level (the layout of cards that predate this helper).
        on_mismatch: ``"restart"`` ignores a checkpoint or card of another identity (it is
            replaced), ``"raise"`` raises ``CheckpointMismatch``.
    """

    out_dir: Path
    identity: dict[str, Any]
    card_name: str
    identity_key: str | None = "identity"
    on_mismatch: Literal["restart", "raise"] = "restart"

    def __post_init__(self) -> None:
        if self.on_mismatch not in ("restart", "raise"):
            raise ValueError(f"on_mismatch must be 'restart' or 'raise', got {self.on_mismatch!r}")
        object.__setattr__(self, "out_dir", Path(self.out_dir))

    @property
    def directory(self) -> Path:
        """Where the checkpoints live: a hidden sibling of ``out_dir``."""
        return self.out_dir.parent / f".{self.out_dir.name}.checkpoint"

    def clean_up(self) -> None:
        """Remove what killed runs left in this run's places (the module docstring's
        clean-up): ``recover_directory`` of ``out_dir``, of the checkpoint directory and of
        each checkpoint folder with leftovers, then every other hidden folder (staging of an
        older version) and every incomplete checkpoint folder."""
        recover_directory(self.out_dir)
        recover_directory(self.directory)
        if not self.directory.is_dir():
            return
        for path in sorted(self.directory.iterdir()):
            target = leftover_target(path.name)
            if target is not None:
                recover_directory(self.directory / target)
            elif path.name.startswith(f".{FOLDER_PREFIX}"):
                shutil.rmtree(path, ignore_errors=True)
            elif path.name.startswith(FOLDER_PREFIX) and not _is_complete(path):
                # Folders are renamed into place whole: an incomplete one is half deleted.
                remove_directory(path)

    def finished(self) -> bool:
        """Whether ``out_dir`` holds the finished model of this very run (after ``clean_up``):
        its card matches the identity (``card_matches``)."""
        self.clean_up()
        card_path = self.out_dir / self.card_name
        if not card_matches(card_path, self._card({})):
            if self.on_mismatch == "raise" and card_path.is_file():
                card = json.loads(card_path.read_text(encoding="utf-8"))
                self._matches(self._identity_in(card), card_path)  # raises, naming the keys
            return False
        self._remove_own_checkpoints()
        return True

    def _identity_in(self, card: dict[str, Any]) -> Any:
        if self.identity_key is None:
            return {key: card.get(key) for key in self.identity}
        return card.get(self.identity_key)

    def _remove_own_checkpoints(self) -> None:
        # A finish killed before it deleted the checkpoints left this run's behind; another
        # run's (another identity training into the same place) are not this run's to delete.
        if not self.directory.is_dir():
            return
        for folder in sorted(self.directory.glob(f"{FOLDER_PREFIX}*")):
            meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
            if meta.get("identity") == self.identity:
                remove_directory(folder)
        if not any(self.directory.iterdir()):
            remove_directory(self.directory)

    def latest(self) -> Checkpoint | None:
        """The newest complete checkpoint of this run, or None (then train from the start);
        runs ``clean_up`` first."""
        self.clean_up()
        folders = sorted(
            (p for p in self.directory.glob(f"{FOLDER_PREFIX}*") if _is_complete(p)),
            key=_folder_step,
        )
        if not folders:
            return None
        folder = folders[-1]
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        if not self._matches(meta["identity"], folder):
            return None
        payload = torch.load(folder / STATE_FILE, map_location="cpu", weights_only=True)
        return Checkpoint(meta["step"], payload["state_dicts"], meta["extra"], payload["rng"])

    def save(
        self,
        step: int,
        objects: Mapping[str, Stateful],
        extra: Mapping[str, Any] | None = None,
        generators: Mapping[str, RandomGenerator] | None = None,
    ) -> Path:
        """Checkpoint the objects' state dicts, every RNG state and ``extra`` (JSON) at ``step``.

        Returns the checkpoint's folder; every other checkpoint is removed once it is complete.
        """
        folder = self.directory / f"{FOLDER_PREFIX}{step}"
        payload = {
            "state_dicts": {name: obj.state_dict() for name, obj in objects.items()},
            "rng": capture_rng(generators),
        }
        meta = {"identity": self.identity, "step": step, "extra": dict(extra or {})}
        with atomic_directory(folder) as staging:
            with atomic_open(staging / STATE_FILE, "wb") as handle:
                torch.save(payload, handle)
            atomic_write_json(staging / META_FILE, meta)
        # Older checkpoints and another run's, renamed aside before they are deleted; hidden
        # folders (staging, set-aside, trash) are leftovers, never loaded, deleted in place.
        for path in sorted(self.directory.iterdir()):
            if path.name.startswith(FOLDER_PREFIX) and path != folder:
                remove_directory(path)
            elif path.name.startswith(f".{FOLDER_PREFIX}"):
                shutil.rmtree(path, ignore_errors=True)
        return folder

    @contextlib.contextmanager
    def finish(self, card: Mapping[str, Any]) -> Iterator[Path]:
        """Yield a staging directory for the final files; on success write the card (identity
        first, then ``card``) into it, rename it onto ``out_dir`` and delete the checkpoints.

        On an exception ``out_dir`` and the checkpoints stay as they were.
        """
        with atomic_directory(self.out_dir) as staging:
            yield staging
            atomic_write_json(staging / self.card_name, self._card(card))
        remove_directory(self.directory)

    def _card(self, card: Mapping[str, Any]) -> dict[str, Any]:
        if self.identity_key is None:
            return {**self.identity, **card}
        return {self.identity_key: self.identity, **card}

    def _matches(self, found: Any, where: Path) -> bool:
        if found == self.identity:
            return True
        if self.on_mismatch == "raise":
            found = found if isinstance(found, dict) else {}
            keys = sorted(
                k for k in {*found, *self.identity} if found.get(k) != self.identity.get(k)
            )
            raise CheckpointMismatch(
                f"{where} belongs to another run (identity differs in {keys}); "
                "remove it or train into another directory"
            )
        return False


def card_matches(card_path: Path, expected: Mapping[str, Any]) -> bool:
    """Whether the JSON card at ``card_path`` exists and holds every key of ``expected`` with
    its value (a key the card lacks counts as ``None``); ``expected`` is compared as JSON
    writes and reads it back (tuples become lists).

    The one "is this output current?" check: an output directory whose card records what
    made it (config, data digest, base...) is reused when this holds, remade otherwise.
    ``Checkpointer.finished`` asks it of the card it wrote; a data maker asks it of its own.
    """
    if not card_path.is_file():
        return False
    card = json.loads(card_path.read_text(encoding="utf-8"))
    if not isinstance(card, dict):
        return False
    expected = json.loads(json.dumps(dict(expected)))
    return all(card.get(key) == value for key, value in expected.items())


def _folder_step(folder: Path) -> int:
    return int(folder.name.removeprefix(FOLDER_PREFIX))


def _is_complete(folder: Path) -> bool:
    """Both files present: folders are renamed into place whole, but a file may be deleted."""
    name = folder.name.removeprefix(FOLDER_PREFIX)
    return name.isdigit() and (folder / STATE_FILE).is_file() and (folder / META_FILE).is_file()

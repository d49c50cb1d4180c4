"""One training loop for every trainer: budget, resume, progress, history, checkpoints.

A trainer builds its model, optimiser, scheduler and generators (seeded as for a fresh run),
then hands the loop a step function and gets back what the run did::

    checkpointer = Checkpointer(out_dir, identity, CARD_NAME)
    if checkpointer.finished():
        return out_dir
    ...  # model, optimizer, scheduler = adamw_warmup_cosine(...), rng
    objects = {"model": model, "optimizer": optimizer, "scheduler": scheduler}

    def step(index: int) -> float:  # update number ``index`` (0-based); returns its loss
        loss = ...
        clipped_step(loss, optimizer, scheduler, parameters)
        return loss.item()

    result = run_training(step, checkpointer, objects, LoopConfig(max_steps=1000),
                          generators={"data": rng}, evaluate=probes, desc="training X")
    with checkpointer.finish({**result.summary(), "history": result.history}) as staging:
        model.save_pretrained(staging)

What it promises (``done`` counts the steps taken, over every session of a resumed run):

* **Resume.** The newest checkpoint of the run (``Checkpointer.latest``) is restored into
  ``objects`` and ``generators`` before the first step; the loop then goes on at its step,
  with its history and its elapsed time. A checkpoint not written by this loop (no
  ``elapsed`` in its extra state) is ignored: the run starts afresh.
* **History.** After each step, an entry ``{"step", "seconds", "loss", **evaluate(done)}``
  when ``done`` is a multiple of ``log_every``, the last step or the step that ran out of
  time; ``loss`` is the mean of the last ``log_every`` losses of this session.
* **Stopping**, checked after each step; the first that holds names the stop:
  ``stop_when(entry)`` true for this step's history entry (``stop_reason``), ``max_seconds``
  spent (``"max_seconds"``, counted over every session), ``max_steps`` reached
  (``"max_steps"``).
* **Checkpoints** every ``checkpoint_every`` steps unless the run stops there (the output
  follows at once): the objects, every generator, ``{"elapsed", "history"}``. Then
  ``on_step(done)``, after every step (the last one too).
* **Distributed.** With a ``context`` of several processes, rank 0 alone reads (first)
  and writes checkpoints, and alone shows progress; every rank restores the same state.

The loop knows nothing of the model: the step, the probes and the output are the trainer's.
Random draws happen only in ``step_fn`` and ``evaluate``, so a resumed run draws what an
uninterrupted one draws.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from drum.utils.checkpoint import Checkpointer, RandomGenerator, Stateful
from drum.utils.distributed import DistContext


@dataclass(frozen=True)
class LoopConfig:
    """Budget and cadence of one run.

    Attributes:
        max_steps: steps of a full run (the schedule's length too, for the trainers here).
        max_seconds: training time after which the run stops (``inf``: none).
        checkpoint_every: steps between checkpoints.
        log_every: steps between history entries (and ``evaluate`` calls).
    """

    max_steps: int
    max_seconds: float = math.inf
    checkpoint_every: int = 500
    log_every: int = 50

    def __post_init__(self) -> None:
        for name in ("max_steps", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"LoopConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not self.max_seconds > 0:
            raise ValueError(f"LoopConfig.max_seconds must be > 0, got {self.max_seconds}")


@dataclass(frozen=True)
class LoopResult:
    """What a run did: steps over every session, seconds (every session), why it stopped,
    and its history entries."""

    steps: int
    seconds: float
    stop_reason: str
    history: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The card entries every trainer writes: steps, seconds, steps/s, stop reason."""
        return {
            "steps": self.steps,
            "train_seconds": round(self.seconds, 1),
            # Over all sessions of a resumed run: ``seconds`` includes the time before it.
            "steps_per_second": round(self.steps / max(self.seconds, 1e-9), 2),
            "stop_reason": self.stop_reason,
        }


def run_training(
    step_fn: Callable[[int], float],
    checkpointer: Checkpointer,
    objects: Mapping[str, Stateful],
    config: LoopConfig,
    *,
    generators: Mapping[str, RandomGenerator] | None = None,
    evaluate: Callable[[int], dict[str, Any]] | None = None,
    stop_when: Callable[[dict[str, Any]], bool] | None = None,
    stop_reason: str = "stop_when",
    on_step: Callable[[int], None] | None = None,
    context: DistContext | None = None,
    desc: str = "training",
    progress: bool = True,
    show: tuple[str, ...] = (),
) -> LoopResult:
    """Run ``step_fn`` from the newest checkpoint (or step 0) until a stop (module docstring).

    Args:
        step_fn: runs update number ``step`` (the steps done before it) and returns its loss.
        checkpointer: the run's checkpoints (its ``finished`` was checked by the trainer).
        objects: what a checkpoint holds (model, optimiser, scheduler...).
        config: budget and cadence.
        generators: named generators checkpointed and restored beside the global ones.
        evaluate: ``done -> metrics`` merged into each history entry (probes).
        stop_when: ``entry -> bool``: stop with ``stop_reason`` after this entry.
        on_step: ``done -> None`` after each step (and its checkpoint).
        context: the processes of a distributed run (``None``: one process).
        desc, progress: the progress bar's label, and whether it shows.
        show: history keys shown in the progress bar beside the loss.
    """
    main = context is None or context.is_main
    step, elapsed, history = 0, 0.0, []
    latest = (
        checkpointer.latest if context is None else lambda: context.main_first(checkpointer.latest)
    )
    resumed = latest()
    if resumed is not None and "elapsed" in resumed.extra:
        resumed.restore(objects, generators=generators)
        step, elapsed, history = resumed.step, resumed.extra["elapsed"], resumed.extra["history"]

    started = time.perf_counter() - elapsed
    bar = tqdm(total=config.max_steps, initial=step, desc=desc, disable=not progress or not main)
    losses: list[float] = []
    reason = "max_steps"
    while step < config.max_steps:
        losses.append(step_fn(step))
        step += 1
        bar.update()
        seconds = time.perf_counter() - started
        out_of_time = seconds >= config.max_seconds
        stop: str | None = None
        if step % config.log_every == 0 or step == config.max_steps or out_of_time:
            entry: dict[str, Any] = {
                "step": step,
                "seconds": round(seconds, 1),
                "loss": float(np.mean(losses[-config.log_every :])),
                **(evaluate(step) if evaluate is not None else {}),
            }
            history.append(entry)
            bar.set_postfix(loss=f"{entry['loss']:.3f}", **{k: entry[k] for k in show})
            if stop_when is not None and stop_when(entry):
                stop = stop_reason
        if stop is None and out_of_time:
            stop = "max_seconds"
        if stop is None and step < config.max_steps and step % config.checkpoint_every == 0:
            if main:
                extra = {"elapsed": time.perf_counter() - started, "history": history}
                checkpointer.save(step, objects, extra, generators=generators)
        if on_step is not None:
            on_step(step)
        if stop is not None:
            reason = stop
            break
    bar.close()
    return LoopResult(step, time.perf_counter() - started, reason, history)

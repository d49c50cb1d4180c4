"""``GenerationPool``: an ``HFLVLM`` whose ``generate`` runs in local worker processes.

On a CPU the built-in LVLM is too small for two torch threads to keep two cores busy: two
processes of one thread each do more (``benchmarks/README.md``: ~1.6x for scoring on 2
cores). ``GenerationPool(base, workers=2)`` keeps ``base`` (an ``HFLVLM`` on the CPU) in this
process for ``score`` and everything else, and starts ``workers`` processes (``spawn``) that
each load the same model with ``threads`` torch threads. ``generate`` cuts the prompts into the
batches one process would run and gives each worker a contiguous block of **whole** batches
(``drum.utils.distributed.block_bounds``, as ``drum.lvlm.sharded`` splits over ranks), so
every batch is the one ``base.generate`` runs and the greedy replies are the same (the
worker's thread count does not change the built-in LVLM's logits: ``tests/lvlm/test_pool.py``
checks the replies). Calls with fewer than two batches, and calls while a layer hook is
installed on ``base`` (a hook lives in this process only), run in this process.

Prompts cut to fit the context in a worker are added to this object's counts
(``truncated_prompts`` / ``dropped_demos``: the base's plus the workers'). The workers start
on the first ``generate`` that needs them (a few seconds each, once) and stop at ``close()``
(or the end of a ``with`` block).

Example::

    with GenerationPool(HFLVLM("models/lvlm"), workers=2) as lvlm:
        replies = lvlm.generate(prompts, max_new_tokens=8, batch_size=64)
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from types import TracebackType
from typing import Any

from drum.lvlm.base import LVLM, ScoreResult, WrappedLVLM
from drum.lvlm.prompt import ICLPrompt
from drum.utils.distributed import block_bounds

# The worker process's own LVLM (``_start_worker``).
_WORKER_LVLM: Any = None


def _start_worker(path: str, context_overflow: str, cache_size: int, threads: int) -> None:
    import torch

    from drum.lvlm.hf import HFLVLM

    global _WORKER_LVLM
    torch.set_num_threads(threads)
    _WORKER_LVLM = HFLVLM(
        path, context_overflow=context_overflow, image_feature_cache_size=cache_size
    )


def _generate_block(
    prompts: list[ICLPrompt], max_new_tokens: int, batch_size: int
) -> tuple[list[str], int, int]:
    """A worker's replies to its block, and the prompts / demonstrations it cut."""
    lvlm = _WORKER_LVLM
    truncated, dropped = lvlm.truncated_prompts, lvlm.dropped_demos
    replies = lvlm.generate(prompts, max_new_tokens, batch_size)
    return replies, lvlm.truncated_prompts - truncated, lvlm.dropped_demos - dropped


class GenerationPool(WrappedLVLM):
    """``base`` (an ``HFLVLM`` on the CPU) with ``generate`` spread over ``workers`` local
    processes of ``threads`` torch threads each (module docstring)."""

    def __init__(self, base: LVLM, workers: int = 2, threads: int = 1) -> None:
        from drum.lvlm.hf import HFLVLM

        if not isinstance(base, HFLVLM) or base.device.type != "cpu":
            raise ValueError("GenerationPool runs an HFLVLM on the CPU in its workers")
        if workers < 1 or threads < 1:
            raise ValueError(f"workers and threads must be >= 1, got {workers} and {threads}")
        self.base = base
        self.workers = workers
        self.threads = threads
        self._executor: ProcessPoolExecutor | None = None
        self._truncated = 0
        self._dropped = 0

    @property
    def fingerprint(self) -> str:
        return self.base.fingerprint  # the same model: the same scores and replies

    @property
    def truncated_prompts(self) -> int | None:  # type: ignore[override]
        own = self.base.truncated_prompts
        return None if own is None else own + self._truncated

    @property
    def dropped_demos(self) -> int | None:  # type: ignore[override]
        own = self.base.dropped_demos
        return None if own is None else own + self._dropped

    def score(
        self,
        prompts: Sequence[ICLPrompt],
        answers: Sequence[str],
        batch_size: int = 32,
        progress: bool = False,
    ) -> list[ScoreResult]:
        return self.base.score(prompts, answers, batch_size, progress)

    def generate(
        self,
        prompts: Sequence[ICLPrompt],
        max_new_tokens: int = 8,
        batch_size: int = 32,
        progress: bool = False,
    ) -> list[str]:
        base = self.base
        batches = -(-len(prompts) // batch_size)
        if self.workers < 2 or batches < 2 or base._hooks.active:  # type: ignore[attr-defined]
            return base.generate(prompts, max_new_tokens, batch_size, progress)
        executor = self._start()
        futures: list[Future[tuple[list[str], int, int]]] = []
        for rank in range(self.workers):
            start, stop = block_bounds(len(prompts), batch_size, rank, self.workers)
            if stop > start:
                block = list(prompts[start:stop])
                futures.append(executor.submit(_generate_block, block, max_new_tokens, batch_size))
        replies: list[str] = []
        for future in futures:
            own, truncated, dropped = future.result()
            replies.extend(own)
            self._truncated += truncated
            self._dropped += dropped
        return replies

    def _start(self) -> ProcessPoolExecutor:
        if self._executor is None:
            base: Any = self.base
            self._executor = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(
                    base.name,
                    base.context_overflow,
                    base.feature_cache.capacity,
                    self.threads,
                ),
            )
        return self._executor

    def close(self) -> None:
        """Stop the workers (a later ``generate`` starts new ones)."""
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None

    def __enter__(self) -> GenerationPool:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


__all__ = ["GenerationPool"]

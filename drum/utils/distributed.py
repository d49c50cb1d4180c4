"""The small layer over ``torch.distributed`` every multi-process DRUM job uses.

A job started by ``torchrun --nproc_per_node N`` or ``accelerate launch --num_processes N``
finds ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` (and ``MASTER_ADDR`` / ``MASTER_PORT``) in its
environment; ``DistContext.from_env()`` reads them and initialises the default process group
once (``gloo`` on CPU, ``nccl`` on CUDA), only when ``WORLD_SIZE > 1``. Without those
variables (a plain ``drum ...``) it is a single-process context on which every collective
below is a no-op, so one code path serves 1 and N processes.

Work is split by ``shard``: **contiguous**, balanced blocks (rank ``r`` of ``N`` takes items
``[floor(r n / N), floor((r + 1) n / N))``). Contiguous rather than strided because the
concatenation of the ranks' blocks in rank order *is* the original order: rank 0 merges the
per-rank parts by concatenating them, and the merged result is laid out exactly as one
process would have produced it, for any ``N``.

Per-rank results go to part files ``<out>.parts/rank-<r>-of-<N>.<ext>`` (``part_path``),
each written atomically (``drum.utils.io``), so a part that exists is complete: a rerun after
a rank was killed keeps the parts already written and redoes only the missing ones.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")

# How long a collective waits for the slowest rank. Generous: in ``drum mine`` every rank
# scores LVLM feedback before the training collectives start (torch's default is 10-30 min).
TIMEOUT_ENV = "DRUM_DIST_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 6 * 3600
PARTS_SUFFIX = ".parts"


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def shard_bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """``[start, stop)`` of rank ``rank``'s contiguous block of ``n`` items:
    ``start = floor(rank n / N)``; block sizes differ by at most one."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in [0, {world_size})")
    return rank * n // world_size, (rank + 1) * n // world_size


def block_bounds(n: int, unit: int, rank: int, world_size: int) -> tuple[int, int]:
    """``[start, stop)`` of rank ``rank``'s contiguous block of **whole units** of ``n`` items:
    the items are cut into ``b = ceil(n / unit)`` units of ``unit`` (the last one shorter) and
    the units are split by ``shard_bounds(b, rank, world_size)``.

    A rank that processes its block ``unit`` items at a time therefore meets exactly the
    units one process meets (``unit`` = a batch, or a scorer's flush chunk), so batched
    results are computed as one process computes them, whatever ``world_size``."""
    if unit < 1:
        raise ValueError(f"unit must be >= 1, got {unit}")
    lo, hi = shard_bounds(-(-n // unit), rank, world_size)
    return min(lo * unit, n), min(hi * unit, n)


def shard(items: Sequence[T], rank: int, world_size: int) -> list[T]:
    """Rank ``rank``'s contiguous block of ``items`` (see ``shard_bounds``); the blocks of
    ranks ``0..N-1`` concatenated are ``items`` again."""
    start, stop = shard_bounds(len(items), rank, world_size)
    return list(items[start:stop])


def part_path(out: str | os.PathLike[str], rank: int, world_size: int, ext: str) -> Path:
    """``<out>.parts/rank-<r>-of-<N>.<ext>``: where rank ``r`` of ``N`` writes its part of
    the result destined for ``out``."""
    out = Path(out)
    return out.parent / f"{out.name}{PARTS_SUFFIX}" / f"rank-{rank}-of-{world_size}.{ext}"


def parts_dir(out: str | os.PathLike[str]) -> Path:
    """``<out>.parts``: the folder of every rank's part of ``out``."""
    out = Path(out)
    return out.parent / f"{out.name}{PARTS_SUFFIX}"


def read_parts(
    out: str | os.PathLike[str], world_size: int, ext: str, read: Callable[[int, Path], T]
) -> list[T]:
    """``read(rank, part_path(out, rank, world_size, ext))`` for every rank, in rank order:
    what rank 0 merges (concatenating contiguous shards restores the original order)."""
    return [read(rank, part_path(out, rank, world_size, ext)) for rank in range(world_size)]


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job: ``rank`` of ``world_size``, ``local_rank`` on its
    node, and the ``device`` it computes on (``cuda:<local_rank>`` on a GPU node)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @classmethod
    def from_env(cls, device: str = "cpu") -> DistContext:
        """The context of this process under ``torchrun`` / ``accelerate launch`` (or a
        single-process one without them); initialises the process group the first time.

        ``device``: ``cpu``, ``cuda`` (each rank takes ``cuda:<LOCAL_RANK>``) or an explicit
        ``cuda:<i>`` (honoured as given, for a single process).
        """
        world_size = _env_int("WORLD_SIZE", 1)
        rank = _env_int("RANK", 0)
        local_rank = _env_int("LOCAL_RANK", rank)
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"RANK={rank} is not in [0, WORLD_SIZE={world_size})")
        if device == "cuda" and world_size > 1:
            device = f"cuda:{local_rank}"
        if device.startswith("cuda"):
            if not torch.cuda.is_available():
                raise ValueError(f"--device {device}: CUDA is not available on this machine")
            torch.cuda.set_device(torch.device(device))
        if world_size > 1 and not dist.is_initialized():
            timeout = datetime.timedelta(seconds=_env_int(TIMEOUT_ENV, DEFAULT_TIMEOUT_S))
            backend = "nccl" if device.startswith("cuda") else "gloo"
            dist.init_process_group(backend, rank=rank, world_size=world_size, timeout=timeout)
        return cls(rank, world_size, local_rank, device)

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that merges parts, writes checkpoints and results."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def shard(self, items: Sequence[T]) -> list[T]:
        """This rank's contiguous block of ``items``."""
        return shard(items, self.rank, self.world_size)

    def bounds(self, n: int) -> tuple[int, int]:
        return shard_bounds(n, self.rank, self.world_size)

    def part_path(self, out: str | os.PathLike[str], ext: str) -> Path:
        return part_path(out, self.rank, self.world_size, ext)

    def barrier(self) -> None:
        """Wait for every rank (no-op in one process)."""
        if self.distributed:
            dist.barrier()

    def main_first(self, work: Callable[[], T]) -> T:
        """``work()`` on rank 0, then (after a barrier) on every other rank: for work whose
        results rank 0 caches on disk (the others then only read them) or that cleans up
        shared places (only one rank may do that at a time)."""
        result = work() if self.is_main else None
        self.barrier()
        return result if self.is_main else work()  # type: ignore[return-value]

    def all_gather_object(self, obj: T) -> list[T]:
        """Every rank's ``obj`` (any JSON-like value, of any size), in rank order.

        Objects travel pickled between this job's own processes (torch's
        ``all_gather_object``); no file is ever unpickled."""
        if not self.distributed:
            return [obj]
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered

    def broadcast_object(self, obj: T) -> T:
        """Rank 0's ``obj`` on every rank."""
        if not self.distributed:
            return obj
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]  # type: ignore[return-value]

    def all_gather_rows(self, local: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
        """Concatenate every rank's ``(sizes[r], ...)`` tensor along dim 0, in rank order.

        The own block of the result *is* ``local`` (the gradient flows into it); the others
        are detached copies (``torch.distributed.all_gather`` of blocks padded to the largest
        size, then trimmed). This is DPR's / UDR's way of making in-batch negatives global:
        every rank computes the same global loss ``L``, and the gradient each rank obtains is
        ``dL/d(own block)``; summing over ranks gives the full ``dL/dtheta``, so a caller
        whose gradients DDP *averages* multiplies its loss by ``world_size``.
        """
        if len(sizes) != self.world_size or local.shape[0] != sizes[self.rank]:
            raise ValueError(
                f"rank {self.rank}: local block has {local.shape[0]} rows, sizes say {sizes}"
            )
        if not self.distributed:
            return local
        largest = max(sizes)
        padded = local.detach().new_zeros((largest, *local.shape[1:]))
        padded[: local.shape[0]] = local.detach()
        blocks = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(blocks, padded.contiguous())
        pieces = [block[:size] for block, size in zip(blocks, sizes, strict=True)]
        pieces[self.rank] = local
        return torch.cat(pieces)

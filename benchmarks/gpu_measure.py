"""Timing helpers for ``bench_gpu.py``: a device that times and measures peak memory, a
vision-tower token counter, the activations autograd saves, DRUM and a baseline alternated
round by round, and model FLOP utilisation against the card's peak (``PEAK_BF16_TFLOPS``)."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from gpu_models import Built

GIB = 1024**3


class Device:
    """Where the models run, its dtype and its peak (TFLOP/s, None if unknown)."""

    def __init__(self, name: str, dtype: torch.dtype, peak: float | None) -> None:
        self.name, self.dtype, self.peak = name, dtype, peak
        self.cuda = name.startswith("cuda")

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def timed(self, fn: Callable[[], Any]) -> tuple[float, Any]:
        """Wall seconds of ``fn()`` (the device's queue drained before and after)."""
        self.sync()
        start = time.perf_counter()
        result = fn()
        self.sync()
        return time.perf_counter() - start, result

    def peak_memory(self, fn: Callable[[], Any]) -> tuple[float | None, float | None]:
        """GiB of device memory allocated before ``fn()`` and at its peak (None off CUDA)."""
        if not self.cuda:
            fn()
            return None, None
        self.sync()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        self.sync()
        return before / GIB, torch.cuda.max_memory_allocated() / GIB


@contextmanager
def vision_tokens(built: Built) -> Iterator[list[int]]:
    """A one-element list counting the tokens run through ``built.vision_tower`` in the block
    (Qwen's tower takes flattened patch rows; the others a batch of images)."""
    count = [0]

    def hook(module: torch.nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        pixels = next(v for v in (*args, *kwargs.values()) if isinstance(v, torch.Tensor))
        per_row = 1 if pixels.dim() == 2 else built.tokens_per_image
        count[0] += int(pixels.shape[0]) * per_row

    handle = built.vision_tower.register_forward_hook(hook, with_kwargs=True)
    try:
        yield count
    finally:
        handle.remove()


@contextmanager
def saved_activations(model: torch.nn.Module) -> Iterator[dict[int, int]]:
    """Bytes autograd saves for backward in the block, by storage (each counted once; the
    model's parameters, which backward reads in place, left out)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        yield seen


def alternate(
    rounds: int, sides: dict[str, Callable[[], Any]], device: Device, built: Built
) -> dict[str, dict[str, Any]]:
    """Each side once untimed (warm-up), then ``rounds`` rounds of each in turn: per side the
    best seconds, its last round's result and the tokens that round ran through the vision
    tower (``vision_tokens``)."""
    for fn in sides.values():
        fn()
    best = {name: float("inf") for name in sides}
    results: dict[str, Any] = {}
    counts: dict[str, int] = {}
    with vision_tokens(built) as counter:
        for _ in range(rounds):
            for name, fn in sides.items():
                before = counter[0]
                seconds, results[name] = device.timed(fn)
                counts[name] = counter[0] - before
                best[name] = min(best[name], seconds)
    return {"seconds": best, "results": results, "vision_tokens": counts}


def mfu(flops: float, seconds: float, device: Device) -> float | None:
    return None if device.peak is None else flops / seconds / (device.peak * 1e12)


def release() -> None:
    """Return the device memory of objects no longer referenced (a model the caller deleted)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# Dense bf16 tensor-core peaks (no sparsity), TFLOP/s, from NVIDIA's data sheets; the first
# entry whose words all occur in torch.cuda.get_device_name() applies.
PEAK_BF16_TFLOPS: tuple[tuple[tuple[str, ...], float], ...] = (
    (("H200",), 989.0),
    (("H100", "PCIe"), 756.0),
    (("H100", "NVL"), 835.0),
    (("H100",), 989.0),  # SXM ("NVIDIA H100 80GB HBM3")
    (("H800",), 989.0),
    (("B200",), 2250.0),
    (("A100",), 312.0),
    (("A800",), 312.0),
    (("L40S",), 362.0),
    (("L40",), 181.0),
    (("L4",), 121.0),
)


def peak_tflops(device_name: str) -> float | None:
    """The card's dense bf16 peak (``PEAK_BF16_TFLOPS``), None for a card not in the table."""
    for words, peak in PEAK_BF16_TFLOPS:
        if all(word in device_name for word in words):
            return peak
    return None

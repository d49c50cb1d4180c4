"""``retain_freed_memory``: freed activations stay in the heap, so repeated forward passes stop
faulting fresh pages in. Measured in fresh interpreters: the setting is process wide."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from drum.utils import allocator

# Four gated-MLP blocks at the built-in LVLM's feedback shape (32 prompts x 30 tokens, width
# 128, MLP 512): a few passes, then the minor page faults of ten more, as JSON.
_FAULTS = """
import json, resource, sys
import torch
from drum.utils import allocator
torch.set_num_threads(1)
applied = allocator.retain_freed_memory() if sys.argv[1] == "retain" else None
torch.manual_seed(0)
blocks = [(torch.randn(512, 128), torch.randn(512, 128), torch.randn(128, 512)) for _ in range(4)]
start = torch.randn(32, 30, 128)
def forward():
    x = start
    for gate, up, down in blocks:
        h = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
        x = x + (torch.nn.functional.silu(h @ gate.T) * (h @ up.T)) @ down.T
with torch.inference_mode():
    for _ in range(3):
        forward()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        forward()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
print(json.dumps({"applied": applied, "faults": after - before}))
"""

glibc = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)


# Whether the thresholds were set, alone (no model).
_APPLIED = """
import json
from drum.utils import allocator
print(json.dumps({"applied": allocator.retain_freed_memory()}))
"""


def _run(script: str, *args: str, env: dict[str, str] | None = None) -> dict[str, object]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    clean.pop("GLIBC_TUNABLES", None)
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@glibc
def test_retained_memory_stops_the_page_faults_of_repeated_passes() -> None:
    default, retained = _run(_FAULTS, "default"), _run(_FAULTS, "retain")
    assert retained["applied"] is True
    # 27,000-74,000 faults by default on this shape, about 1,000 when retained.
    assert int(default["faults"]) > 5_000
    assert int(retained["faults"]) < int(default["faults"]) / 10


@glibc
def test_thresholds_the_environment_sets_are_left_alone() -> None:
    assert _run(_APPLIED)["applied"] is True
    chosen = _run(_APPLIED, env={"MALLOC_TRIM_THRESHOLD_": str(1 << 20)})
    assert chosen["applied"] is False
    tuned = _run(_APPLIED, env={"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1048576"})
    assert tuned["applied"] is False


def test_out_of_range_thresholds_are_refused() -> None:
    with pytest.raises(ValueError, match="glibc's ceiling"):
        allocator.retain_freed_memory(mmap_threshold=allocator.MMAP_THRESHOLD_MAX + 1)
    with pytest.raises(ValueError, match="mmap_threshold"):
        allocator.retain_freed_memory(mmap_threshold=0)
    with pytest.raises(ValueError, match="trim_threshold"):
        allocator.retain_freed_memory(trim_threshold=-1)

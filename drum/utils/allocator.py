"""Keep freed CPU memory for reuse instead of handing it back to the OS and faulting it in again.

A forward pass on the CPU allocates and frees activations of a few MB per op. glibc's
``malloc`` serves blocks above its (dynamic) mmap threshold with fresh ``mmap`` calls and
returns the top of the heap to the OS once more than the trim threshold lies free there, so
the next pass touches new pages: one minor page fault per 4 KiB. Scoring the built-in LVLM's
feedback took about 145,000 such faults per 840 prompts, about a fifth of its time
(``benchmarks/README.md``). Fixing both thresholds (``mallopt``, what ``MALLOC_MMAP_THRESHOLD_``
and ``MALLOC_TRIM_THRESHOLD_`` set from the environment) keeps the freed blocks in the heap,
where the next pass reuses them: the same effect a caching allocator has on a GPU.

The cost is resident memory: up to ``trim_threshold`` bytes of freed heap stay mapped. Process
wide, and only where the C library is glibc; elsewhere, or when the user chose the thresholds
(environment variables above or ``GLIBC_TUNABLES`` with ``glibc.malloc``), nothing is changed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import platform

log = logging.getLogger(__name__)

# mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# glibc's ceiling for the mmap threshold on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX).
MMAP_THRESHOLD_MAX = 32 << 20
DEFAULT_TRIM_THRESHOLD = 256 << 20
# Settings a user may have made for malloc already; they are left alone.
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")

_applied: tuple[int, int] | None = None


def _user_chose_thresholds() -> bool:
    if any(name in os.environ for name in _USER_SETTINGS):
        return True
    return "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", "")


def retain_freed_memory(
    mmap_threshold: int = MMAP_THRESHOLD_MAX, trim_threshold: int = DEFAULT_TRIM_THRESHOLD
) -> bool:
    """Make glibc keep freed blocks below ``mmap_threshold`` bytes in the heap and return free
    heap to the OS only beyond ``trim_threshold`` bytes. True when the thresholds are in
    force (set now or by an earlier call); False where nothing was changed (not glibc, or the
    user set malloc's thresholds). Idempotent."""
    global _applied
    if not 0 < mmap_threshold <= MMAP_THRESHOLD_MAX:
        raise ValueError(
            f"mmap_threshold must be in (0, {MMAP_THRESHOLD_MAX}] bytes (glibc's ceiling), "
            f"got {mmap_threshold}"
        )
    if trim_threshold < 0:
        raise ValueError(f"trim_threshold must be >= 0 bytes, got {trim_threshold}")
    if _applied == (mmap_threshold, trim_threshold):
        return True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    if _user_chose_thresholds():
        log.debug("malloc thresholds left as the environment sets them")
        return False
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    # mallopt returns 1 on success, 0 on error.
    if not (
        mallopt(_M_MMAP_THRESHOLD, mmap_threshold) and mallopt(_M_TRIM_THRESHOLD, trim_threshold)
    ):
        log.debug("mallopt refused the thresholds (%d, %d)", mmap_threshold, trim_threshold)
        return False
    _applied = (mmap_threshold, trim_threshold)
    log.debug("malloc keeps freed blocks < %d B; trims beyond %d B", *_applied)
    return True

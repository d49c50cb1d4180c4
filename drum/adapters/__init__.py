"""Adapters on frozen LVLMs, each an ``LVLM`` itself (``drum.adapters.vpgc``: VPG-C), loaded
from their directories by type (``drum.adapters.registry``: ``load_adapter(base, directory)``,
``ADAPTERS``; ``check_adapter_dir(directory)`` checks a folder before any base loads)."""

from drum.adapters.registry import (
    ADAPTERS,
    CHECKS,
    CONFIG_NAME,
    AdapterBaseError,
    AdapterConfigError,
    AdapterWarning,
    adapter_type,
    check_adapter_dir,
    load_adapter,
)

__all__ = [
    "ADAPTERS",
    "CHECKS",
    "CONFIG_NAME",
    "AdapterBaseError",
    "AdapterConfigError",
    "AdapterWarning",
    "adapter_type",
    "check_adapter_dir",
    "load_adapter",
]

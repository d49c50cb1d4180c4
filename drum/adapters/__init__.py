"""Adapters on frozen LVLMs, each an ``LVLM`` itself (``drum.adapters.vpgc``: VPG-C), loaded
from their directories by type (``drum.adapters.registry``: ``load_adapter(base, directory)``,
``ADAPTERS``)."""

from drum.adapters.registry import (
    ADAPTERS,
    CONFIG_NAME,
    AdapterConfigError,
    adapter_type,
    load_adapter,
)

__all__ = ["ADAPTERS", "CONFIG_NAME", "AdapterConfigError", "adapter_type", "load_adapter"]

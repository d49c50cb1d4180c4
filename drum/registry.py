"""A name -> lazily imported object map; today it backs the metric registry alone.

Entries are ``"module:attribute"`` strings imported on first use, so that listing the names
imports nothing. Its one instance is ``METRICS = Registry("metric")`` in
``drum.metrics.registry`` (read through ``get_metric``).
"""

from __future__ import annotations

import importlib
from typing import Any


class Registry:
    """Names mapped to ``"module:attribute"`` targets, imported on first ``get``.

    ``kind`` ("metric") names the entries in error messages. A name registered twice must
    point at the same target.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._targets: dict[str, str] = {}
        self._loaded: dict[str, Any] = {}

    def register(self, name: str, target: str) -> None:
        """Register ``target`` (``"package.module:attribute"``) under ``name``."""
        if ":" not in target:
            raise ValueError(
                f"{self.kind} target must look like 'module:attribute', got {target!r}"
            )
        if name in self._targets and self._targets[name] != target:
            raise ValueError(f"{self.kind} {name!r} is already registered as {self._targets[name]}")
        self._targets[name] = target

    def names(self) -> list[str]:
        return sorted(self._targets)

    def get(self, name: str) -> Any:
        """The registered object, imported on first access."""
        if name not in self._targets:
            raise KeyError(f"unknown {self.kind} {name!r}; choose one of {self.names()}")
        if name not in self._loaded:
            module_name, attribute = self._targets[name].split(":")
            self._loaded[name] = getattr(importlib.import_module(module_name), attribute)
        return self._loaded[name]

    def __contains__(self, name: object) -> bool:
        return name in self._targets

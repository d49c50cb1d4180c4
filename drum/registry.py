"""The one name -> object registry that the things users swap are looked up by.

Its instances: retrieval strategies (``drum.retrieve.strategies.STRATEGY_REGISTRY``), ranking
losses (``drum.losses.registry.RANKING_LOSSES``), metrics (``drum.metrics.registry.METRICS``),
import formats (``drum.data.importers.FORMATS``) and adapters (``drum.adapters``).

An entry is either the object itself or a ``"package.module:attribute"`` string imported on
first ``get``, so that listing the names (``names``, ``in``) imports nothing heavy::

    LOSSES = Registry("loss")
    LOSSES.register("listnet", "drum.losses.listnet:ListNetLoss")  # imported on first get
    LOSSES.register("mine", MyLoss)                                # the object itself
    LOSSES.get("listnet")   # the class; LOSSES["listnet"] is the same
    LOSSES.get("listmle")   # UnknownNameError: unknown loss 'listmle'; choose one of [...]
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any


class UnknownNameError(KeyError, ValueError):
    """A name nothing is registered under; the message lists the registered names.

    A ``KeyError`` (a failed lookup) and a ``ValueError`` (a bad option value), so that callers
    that catch either, as configs and the CLI do, catch it.
    """

    def __str__(self) -> str:  # KeyError's would quote the message
        return str(self.args[0])


class Registry:
    """Names mapped to objects or to ``"module:attribute"`` targets imported on first ``get``.

    ``kind`` ("metric", "strategy", ...) names the entries in error messages. A name registered
    twice must be given the same target (an equal object, or the same string).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._targets: dict[str, Any] = {}
        self._loaded: dict[str, Any] = {}

    def register(self, name: str, target: Any) -> None:
        """Register ``target`` under ``name``: an object, or a ``"package.module:attribute"``
        string to import on first ``get`` (a string is always read as such a target)."""
        if isinstance(target, str) and ":" not in target:
            raise ValueError(
                f"{self.kind} target must look like 'module:attribute', got {target!r}"
            )
        if name in self._targets and self._targets[name] != target:
            raise ValueError(f"{self.kind} {name!r} is already registered as {self._targets[name]}")
        self._targets[name] = target

    def names(self) -> list[str]:
        """The registered names, sorted; nothing is imported."""
        return sorted(self._targets)

    def get(self, name: str) -> Any:
        """The object registered under ``name``, imported on first access when lazy.

        Raises:
            UnknownNameError: nothing is registered under ``name``.
        """
        if name not in self._targets:
            raise UnknownNameError(f"unknown {self.kind} {name!r}; choose one of {self.names()}")
        if name not in self._loaded:
            target = self._targets[name]
            if isinstance(target, str):
                module_name, attribute = target.split(":")
                target = getattr(importlib.import_module(module_name), attribute)
            self._loaded[name] = target
        return self._loaded[name]

    def __getitem__(self, name: str) -> Any:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._targets

    def __iter__(self) -> Iterator[str]:
        """The registered names, sorted (as ``names()``); iterating imports nothing."""
        return iter(self.names())

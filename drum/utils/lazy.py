"""Lazy package attributes (PEP 562): a package names what it exports and where each name is
defined, and a name's module is imported on its first use.

So importing a package, or one light module of it, never imports its heavy siblings:
``drum.retrieve.strategies`` does not import FAISS through ``drum.retrieve``'s ``__init__``,
and a module imports a constant from the module that defines it instead of copying it::

    # drum/retrieve/__init__.py
    from drum.utils.lazy import lazy_exports

    __all__ = ["DemonstrationRetriever", "RetrievalConfig"]
    __getattr__, __dir__ = lazy_exports(__name__, {
        "DemonstrationRetriever": "drum.retrieve.retriever",
        "RetrievalConfig": "drum.retrieve.strategies",
    })
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``exports`` maps each exported name to the
    module that defines it; a resolved name is cached in the package, so it loads once.

    A name that is not exported raises ``AttributeError``, which lets ``from package import
    submodule`` fall back to importing the submodule.
    """

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        setattr(sys.modules[package], name, value)  # later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted(set(exports) | set(vars(sys.modules[package])))

    return __getattr__, __dir__

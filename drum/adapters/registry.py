"""Adapters by registry: an adapter directory loads by the ``adapter_type`` its config records.

Every adapter directory holds ``adapter_config.json`` (peft's name) with an ``adapter_type``
field; ``ADAPTERS`` maps each type to its loader, ``loader(base, directory) -> LVLM``, as a
lazy ``"module:attribute"`` target (``drum.registry.Registry``), so naming the types imports
no adapter. A new adapter is one line::

    ADAPTERS.register("mine", "my_package.adapter:load_adapter")

``load_adapter(base, directory)`` reads the type and calls its loader; a directory without
the config, or with a type nobody registered, is an ``AdapterConfigError`` that says which
types there are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from drum.registry import Registry

CONFIG_NAME = "adapter_config.json"

ADAPTERS = Registry("adapter")
ADAPTERS.register("vpgc", "drum.adapters.vpgc.model:load_adapter")


class AdapterConfigError(ValueError):
    """An adapter directory that cannot be loaded: no or a bad ``adapter_config.json``, an
    unknown ``adapter_type``, or an adapter that does not fit its base."""


def adapter_type(directory: str | Path) -> str:
    """The ``adapter_type`` that ``directory``'s ``adapter_config.json`` records."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise AdapterConfigError(f"{directory}: not an adapter directory (no {CONFIG_NAME})")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise AdapterConfigError(f"{path}: not JSON ({error})") from error
    kind = config.get("adapter_type") if isinstance(config, dict) else None
    if not isinstance(kind, str):
        raise AdapterConfigError(f"{path}: no adapter_type")
    return kind


def load_adapter(base: Any, directory: str | Path) -> Any:
    """The adapter saved in ``directory`` put on ``base`` (an ``HFLVLM``), by its type's
    registered loader; an ``LVLM`` itself."""
    kind = adapter_type(directory)
    if kind not in ADAPTERS:
        raise AdapterConfigError(
            f"{directory}: unknown adapter_type {kind!r}; registered: {', '.join(ADAPTERS.names())}"
        )
    return ADAPTERS.get(kind)(base, directory)

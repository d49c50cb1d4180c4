"""Adapters by registry: an adapter directory loads by the ``adapter_type`` its config records.

Every adapter directory holds ``adapter_config.json`` (peft's name) with an ``adapter_type``
field; ``ADAPTERS`` maps each type to its loader,
``loader(base, directory, *, allow_other_base) -> LVLM``, as a lazy ``"module:attribute"``
target (``drum.registry.Registry``), so naming the types imports no adapter. A new adapter is
one line::

    ADAPTERS.register("mine", "my_package.adapter:load_adapter")

``load_adapter(base, directory)`` reads the type and calls its loader; a directory without
the config, or with a type nobody registered, is an ``AdapterConfigError`` that says which
types there are. A loader refuses a base other than the one the adapter was trained on
(``AdapterBaseError``, naming both) unless ``allow_other_base=True``; an adapter that records
no base loads with an ``AdapterWarning``.

``check_adapter_dir(directory)`` checks the folder alone, before any base loads (what the CLI
runs up front): the config, and, where the type registers a checker in ``CHECKS``
(``checker(directory) -> None``, raising ``AdapterConfigError``), its files, each problem one
line naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from drum.registry import Registry

CONFIG_NAME = "adapter_config.json"

ADAPTERS = Registry("adapter")
ADAPTERS.register("vpgc", "drum.adapters.vpgc.model:load_adapter")
CHECKS = Registry("adapter check")
CHECKS.register("vpgc", "drum.adapters.vpgc.check:check_adapter_dir")


class AdapterConfigError(ValueError):
    """An adapter directory that cannot be loaded: no or a bad ``adapter_config.json``, an
    unknown ``adapter_type``, or an adapter that does not fit its base."""


class AdapterBaseError(AdapterConfigError):
    """An adapter put on a base other than the one it was trained on (the fingerprints
    differ), without ``allow_other_base``."""


class AdapterWarning(UserWarning):
    """An adapter loaded without the check of its base: it records none, or the caller
    allowed another base."""


def adapter_type(directory: str | Path) -> str:
    """The ``adapter_type`` that ``directory``'s ``adapter_config.json`` records."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise AdapterConfigError(f"{directory}: not an adapter directory (no {CONFIG_NAME})")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise AdapterConfigError(f"{path}: not JSON ({error})") from error
    kind = config.get("adapter_type") if isinstance(config, dict) else None
    if not isinstance(kind, str):
        raise AdapterConfigError(f"{path}: no adapter_type")
    return kind


def _known_type(directory: str | Path) -> str:
    kind = adapter_type(directory)
    if kind not in ADAPTERS:
        raise AdapterConfigError(
            f"{directory}: unknown adapter_type {kind!r}; registered: {', '.join(ADAPTERS.names())}"
        )
    return kind


def check_adapter_dir(directory: str | Path) -> None:
    """Raise ``AdapterConfigError`` (one line naming the file and what is wrong) unless
    ``directory`` holds an adapter of a registered type whose files its type's checker (if
    any) accepts; reads the folder alone, no base."""
    if not Path(directory).is_dir():
        raise AdapterConfigError(f"{directory}: no such adapter directory")
    kind = _known_type(directory)
    if kind in CHECKS:
        CHECKS.get(kind)(directory)


def load_adapter(base: Any, directory: str | Path, *, allow_other_base: bool = False) -> Any:
    """The adapter saved in ``directory`` put on ``base`` (an ``HFLVLM``), by its type's
    registered loader; an ``LVLM`` itself. ``allow_other_base``: load it even on a base other
    than the one it was trained on (with an ``AdapterWarning``)."""
    kind = _known_type(directory)
    return ADAPTERS.get(kind)(base, directory, allow_other_base=allow_other_base)

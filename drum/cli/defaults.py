"""Option defaults read from the library, never retyped: ``default_of(SOURCE, "name")``.

``SOURCE`` is ``"module:attribute"``: a dataclass config, whose field ``name`` gives the
default (a dotted ``name`` goes into a nested config's default, ``"feedback.candidates"``), or
a function, whose parameter ``name`` does (``"drum.demon.run:evaluate_demon"``,
``"batch_size"``). Tuples become comma-separated strings, as the command line spells them.

The value is read when first needed (an omitted option, or the command's ``--help``), so
building the CLI (``drum --help``) imports no config module, and with them no torch.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from dataclasses import dataclass
from functools import cache
from typing import Any


def _dataclass_default(cls: type, name: str) -> Any:
    (field,) = [f for f in dataclasses.fields(cls) if f.name == name]
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    raise TypeError(f"{cls.__qualname__}.{name} has no default")


def _parameter_default(function: Any, name: str) -> Any:
    default = inspect.signature(function).parameters[name].default
    if default is inspect.Parameter.empty:
        raise TypeError(f"{function.__qualname__}'s {name} has no default")
    return default


@cache
def _library_default(source: str, name: str) -> Any:
    module, _, qualname = source.partition(":")
    owner = getattr(importlib.import_module(module), qualname)
    head, *rest = name.split(".")
    if dataclasses.is_dataclass(owner):
        value = _dataclass_default(owner, head)
    else:
        value = _parameter_default(owner, head)
    for part in rest:  # into a nested config's default, e.g. MiningConfig's "feedback.candidates"
        value = getattr(value, part)
    # Tuples are comma-separated lists on the command line.
    return ",".join(map(str, value)) if isinstance(value, tuple) else value


@dataclass(frozen=True)
class ConfigDefault:
    """An option default that is a library default, read when first needed.

    Click calls it for an omitted option and the command's ``--help`` prints it (``str``), so
    the value is the library's own, yet building the CLI imports nothing of the library.
    """

    config: str  # "module:attribute" of a dataclass or a function
    name: str  # a field or parameter, or a dotted path into a nested config's default

    def __call__(self) -> Any:
        return _library_default(self.config, self.name)

    def __str__(self) -> str:
        return str(self())

    def __bool__(self) -> bool:  # a flag's --help shows --x or --no-x by the default's truth
        return bool(self())


def default_of(config: str, name: str) -> Any:
    """The default of field ``name`` of the dataclass ``config`` (``"module:Class"``), or of
    parameter ``name`` of the function ``config`` (``"module:function"``), as an option
    default: ``seed: int = default_of(WORLD_CONFIG, "seed")``."""
    return ConfigDefault(config, name)

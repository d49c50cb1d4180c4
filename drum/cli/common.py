"""What the subcommands share: the console, ``fail``, option types and config defaults."""

from __future__ import annotations

import dataclasses
import importlib
import sys
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

console = Console(stderr=True)

ModelOption = Annotated[
    str, typer.Option("--model", "-m", help="Embedder: a hub id or a save_pretrained directory.")
]


def fail(message: str) -> NoReturn:
    """Print ``message`` as an error and exit with status 2."""
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code=2)


def csv_ints(value: str, option: str) -> tuple[int, ...]:
    """``"0,1,2"`` -> ``(0, 1, 2)``; a clear error naming ``option`` otherwise."""
    try:
        return tuple(int(item) for item in value.split(",") if item.strip())
    except ValueError:
        fail(f"{option} must be comma-separated integers, got {value!r}")


@cache
def _field_default(config: str, name: str) -> Any:
    module, _, qualname = config.partition(":")
    cls = getattr(importlib.import_module(module), qualname)
    head, *rest = name.split(".")
    (field,) = [f for f in dataclasses.fields(cls) if f.name == head]
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        raise TypeError(f"{qualname}.{head} has no default")
    for part in rest:  # into a nested config's default, e.g. MiningConfig's "feedback.candidates"
        value = getattr(value, part)
    # Tuples are comma-separated lists on the command line.
    return ",".join(map(str, value)) if isinstance(value, tuple) else value


@dataclass(frozen=True)
class ConfigDefault:
    """An option default that is a config field's default, read when first needed.

    Click calls it for an omitted option and the command's ``--help`` prints it (``str``), so
    the value is the config's own, yet building the CLI (``drum --help``) imports no config
    module, and with them no torch or transformers.
    """

    config: str  # "module:Class" of a dataclass
    name: str  # a field, or a dotted path into a nested config's default ("feedback.candidates")

    def __call__(self) -> Any:
        return _field_default(self.config, self.name)

    def __str__(self) -> str:
        return str(self())


def default_of(config: str, name: str) -> Any:
    """The default of field ``name`` of the dataclass ``config`` (``"module:Class"``), as an
    option default: ``seed: int = default_of(WORLD_CONFIG, "seed")``."""
    return ConfigDefault(config, name)


def limit_threads() -> None:
    """At most two torch threads (the built-in models are tiny; more threads only contend)."""
    import torch

    torch.set_num_threads(max(1, min(torch.get_num_threads(), 2)))


def show_tables(markdown: str, renderable: Any) -> None:
    """Result tables on stdout: in a terminal as ``renderable`` (a rich table that fits the
    terminal's width), to a pipe or file as ``markdown``, as always."""
    if sys.stdout.isatty():
        Console().print(renderable)
    else:
        typer.echo(markdown)

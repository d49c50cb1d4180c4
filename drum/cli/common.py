"""What the subcommands share: the console, ``fail``, option types, and the up-front checks
every command runs before slow work (datasets, model arguments, outputs). Option defaults come
from the library through ``drum.cli.defaults.default_of``."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from drum.cli.defaults import default_of as default_of  # re-exported: drum.cli.vpgc reads it here

if TYPE_CHECKING:
    from drum.data.example import Example
    from drum.embed.hf import HFDualEncoder
    from drum.embed.joint import LVLMEmbedder
    from drum.lvlm.base import LVLM
    from drum.lvlm.hf import HFLVLM
    from drum.tasks.spec import TaskSpec
    from drum.utils.distributed import DistContext

console = Console(stderr=True)

ModelOption = Annotated[
    str, typer.Option("--model", "-m", help="Embedder: a hub id or a save_pretrained directory.")
]
DeviceOption = Annotated[
    str,
    typer.Option(
        help="cpu, cuda (under torchrun / accelerate launch each rank takes cuda:<LOCAL_RANK>) "
        "or cuda:<i>."
    ),
]
DtypeOption = Annotated[
    str, typer.Option(help="Weights' dtype: auto (as saved), fp32, bf16 or fp16.")
]
DeviceMapOption = Annotated[
    str | None,
    typer.Option(
        help="Spread the LVLM over every visible GPU (auto: accelerate's device_map) instead "
        "of --device; for a model too large for one GPU."
    ),
]
DTYPES = ("auto", "fp32", "bf16", "fp16")

T = TypeVar("T")


def fail(message: str) -> NoReturn:
    """Print ``message`` as one line (never wrapped, no markup) and exit with status 2."""
    console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code=2)


def warn(message: str) -> None:
    """Print ``message`` as a one-line warning."""
    console.print(f"[yellow]warning:[/yellow] {escape(message)}", soft_wrap=True)


def read_or_fail(
    read: Callable[[], T],
    error: type[Exception] | tuple[type[Exception], ...],
    warning: type[Warning],
) -> T:
    """``read()``, with an ``error`` (or one of a tuple of them) ending the command (exit 2) and
    each distinct ``warning`` printed once as one line; other warnings are shown as Python
    would have shown them."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", warning)
        try:
            result = read()
        except error as raised:
            fail(str(raised))
    shown: set[str] = set()
    for caught_warning in caught:
        if issubclass(caught_warning.category, warning):
            if str(caught_warning.message) not in shown:  # a file read twice warns once
                shown.add(str(caught_warning.message))
                warn(str(caught_warning.message))
        else:
            warnings.warn_explicit(
                caught_warning.message,
                caught_warning.category,
                caught_warning.filename,
                caught_warning.lineno,
            )
    return result


def read_dataset(path: Path, pool: bool = False) -> list[Example]:
    """``validate_dataset(path)``: every field, every image decoded, at least one example; a
    ``DataError`` ends the command (exit 2), a ``DataWarning`` is printed as one line.

    ``pool``: the file holds demonstrations, so an example without answers ends the command
    too, naming its line."""
    from drum.data.jsonl import DataError, DataWarning, validate_dataset

    return read_or_fail(
        lambda: validate_dataset(path, require_answers=pool), DataError, DataWarning
    )


def check_scored_tasks(tasks: Iterable[TaskSpec]) -> None:
    """Each task's data as a scored run needs it (``read_dataset`` on each file once): a pool
    whose every example has answers (they are shown as demonstrations), and queries whose every
    example has answers (the references scoring compares with)."""
    from drum.data.jsonl import DataError, require_references

    pools: set[Path] = set()
    queries: set[Path] = set()
    for task in tasks:
        if task.pool.resolve() not in pools:
            pools.add(task.pool.resolve())
            read_dataset(task.pool, pool=True)
        if task.queries.resolve() not in queries | pools:
            queries.add(task.queries.resolve())
            examples = read_dataset(task.queries)
            try:
                require_references(task.queries, examples)
            except DataError as error:
                fail(str(error))


def check_model(model: str | Path, option: str) -> None:
    """Exit 2 unless ``model`` can name a model (a model directory or a hub id); cheap."""
    from drum.utils.model_path import ModelPathError, check_model_path

    try:
        check_model_path(str(model))
    except ModelPathError as error:
        fail(f"{option}: {error}")


def parse_dtype(value: str, option: str = "--dtype") -> Any:
    """``auto`` -> None (the saved dtype), ``fp32`` / ``bf16`` / ``fp16`` -> the torch dtype;
    anything else exits 2 naming ``option``."""
    if value not in DTYPES:
        fail(f"{option} must be one of {', '.join(DTYPES)}, got {value!r}")
    if value == "auto":
        return None
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[value]


def check_device(device: str, option: str = "--device") -> None:
    """Exit 2 unless ``device`` is ``cpu``, ``cuda`` or ``cuda:<i>`` (cheap, no torch)."""
    head, _, index = device.partition(":")
    if head not in ("cpu", "cuda") or (index and (head != "cuda" or not index.isdigit())):
        fail(f"{option} must be cpu, cuda or cuda:<index>, got {device!r}")


def dist_context(device: str, device_map: str | None = None) -> DistContext:
    """This process's place in a ``torchrun`` / ``accelerate launch`` job (one process
    otherwise), exiting 2 on a malformed launcher environment, or when ``--device-map`` (one
    model spread over every GPU) is asked for under a launcher."""
    from drum.utils.distributed import DistContext

    try:
        context = DistContext.from_env(device)
    except ValueError as error:
        fail(str(error))
    if device_map is not None and context.distributed:
        fail("--device-map spreads one model over every GPU: run it as one process")
    return context


def load_embedder(
    model: str | Path,
    option: str = "--model",
    device: str = "cpu",
    dtype: str = "auto",
    joint: bool = False,
    lvlm: HFLVLM | None = None,
    instruction: str = "",
) -> HFDualEncoder | LVLMEmbedder:
    """``HFDualEncoder(model)`` on ``device`` in ``dtype`` (``DTYPES``), or with ``joint`` (the
    embedder of a ``joint`` strategy) ``LVLMEmbedder(model, instruction)``, on ``lvlm`` itself
    when given (an LVLM already loaded from ``model``: one copy of the weights); a bad model
    argument exits 2 naming ``option``."""
    from drum.utils.model_path import ModelPathError

    torch_dtype = parse_dtype(dtype)
    try:
        if joint:
            from drum.embed.joint import LVLMEmbedder

            if lvlm is not None:
                return LVLMEmbedder(lvlm, instruction)
            return LVLMEmbedder(str(model), instruction, device=device, dtype=torch_dtype)
        from drum.embed.hf import HFDualEncoder

        return HFDualEncoder(str(model), device=device, dtype=torch_dtype)
    except ModelPathError as error:
        fail(f"{option}: {error}")


def check_lvlm(model: str | Path, option: str = "--model", adapter: Path | None = None) -> None:
    """Exit 2 unless ``model`` names an LVLM: a served model's spelling
    (``openai:<base_url>#<model>[?option=value&...]``, ``drum.lvlm.served``), checked whole, or
    a model directory or hub id (``check_model``); an ``adapter`` needs an in-process model."""
    from drum.lvlm.served.config import ServedConfig, is_served_spec

    if not is_served_spec(str(model)):
        check_model(model, option)
        return
    try:
        ServedConfig.from_spec(str(model))
    except ValueError as error:
        fail(f"{option}: {error}")
    if adapter is not None:
        fail(
            f"--adapter {adapter}: an adapter goes on an in-process model, not on the served "
            f"{option} (serve it: drum serve --model BASE --adapter {adapter})"
        )


def load_lvlm(
    model: str | Path,
    option: str = "--model",
    device: str = "cpu",
    dtype: str = "auto",
    device_map: str | None = None,
) -> LVLM:
    """``HFLVLM(model)`` on ``device`` in ``dtype`` (``DTYPES``), or spread over the GPUs by
    ``device_map`` (e.g. ``auto``); or, for ``openai:<base_url>#<model>``, the served model
    (``drum.lvlm.served.ServedLVLM``: placement options do not apply). A bad model argument
    exits 2 naming ``option``."""
    from drum.lvlm.served.config import is_served_spec

    if is_served_spec(str(model)):
        from drum.lvlm.served.model import ServedLVLM

        try:
            return ServedLVLM.from_spec(str(model))
        except ValueError as error:
            fail(f"{option}: {error}")
    from drum.lvlm.hf import HFLVLM
    from drum.utils.model_path import ModelPathError

    torch_dtype = parse_dtype(dtype)
    placement: dict[str, Any] = {"device": device}
    if torch_dtype is not None:
        placement["dtype"] = torch_dtype
    if device_map is not None:
        placement["device_map"] = device_map
    try:
        return HFLVLM(str(model), **placement)
    except ModelPathError as error:
        fail(f"{option}: {error}")


JointInstructionOption = Annotated[
    str,
    typer.Option(
        help="For a joint strategy: the instruction put before every input's text by the LVLM "
        "read as a joint embedder (the one a GME / VLM2Vec checkpoint was trained with; "
        "default none). Part of the embeddings' cache key."
    ),
]


def check_joint_instruction(instruction: str, joint: bool, strategy: str) -> None:
    """Exit 2 if ``--joint-instruction`` is given where no ``joint`` strategy embeds with it."""
    if instruction.strip() and not joint:
        fail(
            f"--joint-instruction: no strategy of {strategy!r} embeds joint vectors; it applies "
            "to a joint strategy (e.g. 'joint') only"
        )


LVLMOption = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="LVLM: a hub id, a save_pretrained directory, or a served model "
        "openai:<base_url>#<model> (README: served and API models).",
    ),
]


AllowOtherBaseOption = Annotated[
    bool,
    typer.Option(
        "--allow-other-base",
        help="Put the --adapter on this --model even though it was trained on another base "
        "(its recorded fingerprint differs).",
    ),
]


def check_adapter(adapter: Path, option: str = "--adapter") -> None:
    """Exit 2 unless ``adapter`` is an adapter folder whose files load
    (``drum.adapters.check_adapter_dir``: config, weights, shapes, finite values), in one
    line naming the file; reads the folder alone, before any model loads."""
    from drum.adapters import CONFIG_NAME, AdapterConfigError, check_adapter_dir

    if not adapter.is_dir():
        fail(f"{option} {adapter}: no such adapter directory")
    if not (adapter / CONFIG_NAME).is_file():
        fail(f"{option} {adapter}: not an adapter (no {CONFIG_NAME}; see drum vpgc train)")
    try:
        check_adapter_dir(adapter)
    except AdapterConfigError as error:
        fail(f"{option}: {error}")


def wrap_adapter(
    lvlm: HFLVLM, adapter: Path, option: str = "--adapter", allow_other_base: bool = False
) -> Any:
    """``drum.adapters.load_adapter(lvlm, adapter)`` (by the type its config records); an
    unknown type or an adapter for another base exits 2 in one line (``allow_other_base``:
    the latter loads, with a one-line warning, as does an adapter that records no base)."""
    from drum.adapters import AdapterConfigError, AdapterWarning, load_adapter

    def load() -> Any:
        try:
            return load_adapter(lvlm, adapter, allow_other_base=allow_other_base)
        except (AdapterConfigError, FileNotFoundError) as error:
            fail(f"{option} {adapter}: {error}")

    return read_or_fail(load, (), AdapterWarning)


def check_out(path: Path, kind: Literal["file", "directory"], option: str = "--out") -> None:
    """Exit 2 unless ``path`` can be written as a ``kind``: not an existing thing of the other
    kind, and under a directory rather than a file."""
    if kind == "file" and path.is_dir():
        fail(f"{option} {path} is a directory; expected the path of a file to write")
    if kind == "directory" and path.exists() and not path.is_dir():
        fail(f"{option} {path} is a file; expected a directory")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                fail(f"{option} {path}: {parent} is a file, not a directory")
            break


def csv_ints(value: str, option: str) -> tuple[int, ...]:
    """``"0,1,2"`` -> ``(0, 1, 2)``; a clear error naming ``option`` otherwise."""
    try:
        return tuple(int(item) for item in value.split(",") if item.strip())
    except ValueError:
        fail(f"{option} must be comma-separated integers, got {value!r}")


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

"""``drum demon``: score predictions on the DEMON benchmark, or run an LVLM on it and score
(the built-in benchmark's commands, ``make-builtin`` ... ``benchmark``, are
``drum.cli.demon_builtin``'s, added to this group by ``drum.cli.app``).

Both write ``<out>/demon_scores.json``, ``<out>/<Task>/sample_scores.jsonl`` and, rendered
from the JSON, ``<out>/demon_scores.md`` and ``<out>/demon_scores.png`` (see docs/demon.md).
A built-in root (``drum demon make-builtin``'s split folders) is aggregated by its card's
categories, the reference's release by the reference's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from drum.cli.common import (
    AllowOtherBaseOption,
    DeviceMapOption,
    DeviceOption,
    DtypeOption,
    LVLMOption,
    check_adapter,
    check_device,
    check_lvlm,
    check_out,
    console,
    dist_context,
    fail,
    load_lvlm,
    parse_dtype,
    read_or_fail,
    wrap_adapter,
)
from drum.cli.defaults import default_of

if TYPE_CHECKING:
    from drum.demon.format import DemonTask
    from drum.utils.distributed import DistContext

app = typer.Typer(no_args_is_help=True, help="The DEMON benchmark: score predictions, or evaluate.")

EVALUATE = "drum.demon.run:evaluate_demon"  # its batch_size and max_new_tokens are eval's

DataOption = Annotated[
    Path, typer.Option("--data", help="A DEMON release root: <Task>/core/core.json per task.")
]
TasksOption = Annotated[
    str | None, typer.Option("--tasks", help="Comma-separated task folders (default: all).")
]
OutOption = Annotated[Path, typer.Option("--out", help="Directory for the scores and reports.")]


def task_names(tasks: str | None) -> list[str] | None:
    if tasks is None:
        return None
    names = [name.strip() for name in tasks.split(",") if name.strip()]
    if not names:
        fail(f"--tasks names no task: {tasks!r}")
    return names


def _check_data(data: Path) -> None:
    if not data.is_dir():
        fail(f"--data {data}: no such directory; expected a DEMON root (<Task>/core/core.json)")


def positive(value: int | None, option: str) -> None:
    if value is not None and value < 1:
        fail(f"{option} must be a positive integer, got {value}")


def _read_tasks(data: Path, names: list[str] | None) -> list[DemonTask]:
    """``read_demon_root``: a format error ends the command, a format warning is one line."""
    from drum.demon.format import DemonFormatError, DemonFormatWarning, read_demon_root

    return read_or_fail(lambda: read_demon_root(data, names), DemonFormatError, DemonFormatWarning)


def _categories(data: Path) -> dict[str, tuple[str, ...]] | None:
    """The built-in tasks' own category map when ``data`` is a built-in root (or split folder),
    so they are aggregated by category; None (the reference's ``CATEGORIES``) otherwise. The
    root's card also says which of its tasks are scored by image choice: registered here."""
    from drum.builtin.demon.card import builtin_categories, register_card_scoring

    try:
        register_card_scoring(data)
        return builtin_categories(data)
    except ValueError as error:
        fail(str(error))


@contextmanager
def _output_locked(out: Path, context: DistContext) -> Iterator[None]:
    """``output_lock(out)`` (rank 0's), exit 2 naming its holder when another run has it."""
    from drum.demon.lock import OutputLockedError, output_lock

    with ExitStack() as stack:
        try:
            stack.enter_context(output_lock(out, context))
        except OutputLockedError as error:
            fail(str(error))
        yield


def _report(out: Path, scores: dict[str, Any]) -> None:
    from drum.demon.evaluate import SCORES_FILE
    from drum.demon.report import markdown_report, render_report

    render_report(out / SCORES_FILE)
    typer.echo(markdown_report(scores))
    console.print(
        f"results: {out / SCORES_FILE} (+ .md, .png, <Task>/sample_scores.jsonl and "
        f"sample_records.jsonl; drum report --results {out} shows them)"
    )


@app.command("score")
def demon_score_command(
    data: DataOption,
    predictions: Annotated[
        Path, typer.Option(help="Predictions in the reference layout: <Task>/pred.json.")
    ],
    out: OutOption,
    tasks: TasksOption = None,
) -> None:
    """Score <predictions>/<Task>/pred.json (every task that has one, or --tasks)."""
    from drum.demon.evaluate import score_demon
    from drum.demon.format import DemonFormatError, DemonFormatWarning
    from drum.demon.scorers import DemonScoringError

    _check_data(data)
    names = task_names(tasks)
    if not predictions.is_dir():
        fail(f"--predictions {predictions}: no such directory; expected <Task>/pred.json")
    check_out(out, "directory")
    categories = _categories(data)
    scores = read_or_fail(
        lambda: score_demon(data, predictions, out, names, categories=categories),
        (DemonFormatError, DemonScoringError),
        DemonFormatWarning,
    )
    _report(out, scores)


@app.command("eval")
def demon_eval_command(
    model: LVLMOption,
    data: DataOption,
    out: Annotated[
        Path, typer.Option(help="Directory for <Task>/pred.json (resumed), scores and reports.")
    ],
    tasks: TasksOption = None,
    max_per_task: Annotated[
        int | None, typer.Option(help="Evaluate only the first N samples of each task.")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Prompts per generate call.")] = default_of(
        EVALUATE, "batch_size"
    ),
    max_new_tokens: Annotated[
        int, typer.Option(help="Greedy decoding length (the reference's 300).")
    ] = default_of(EVALUATE, "max_new_tokens"),
    device: DeviceOption = "cpu",
    adapter: Annotated[
        Path | None,
        typer.Option(
            help="An adapter directory (any registered adapter_type, e.g. drum vpgc train) to "
            "put on the model."
        ),
    ] = None,
    allow_other_base: AllowOtherBaseOption = False,
    dtype: DtypeOption = "auto",
    device_map: DeviceMapOption = None,
) -> None:
    """Generate greedily into <out>/<Task>/pred.json (a killed run resumes), then score."""
    from drum.demon.format import DemonFormatError, DemonFormatWarning
    from drum.demon.images import decode_images
    from drum.demon.lock import OutputLockedError
    from drum.demon.run import DemonRunError, evaluate_demon, pending_samples
    from drum.demon.scorers import DemonScoringError
    from drum.lvlm.served.client import ServedError

    _check_data(data)
    names = task_names(tasks)
    positive(max_per_task, "--max-per-task")
    positive(batch_size, "--batch-size")
    positive(max_new_tokens, "--max-new-tokens")
    check_device(device)
    parse_dtype(dtype)
    check_out(out, "directory")
    check_lvlm(model, "--model", adapter)
    if adapter is not None:
        check_adapter(adapter)
    selected = _read_tasks(data, names)
    categories = _categories(data)
    # Under torchrun: each rank generates its share of every task (docs/scale.md).
    context = dist_context(device, device_map)
    with _output_locked(out, context):  # a second run on --out says who holds it, exits 2
        try:  # a run's pred.json files to resume and the images it will show, before the model
            for task in selected:
                decode_images(task, pending_samples(task, out, max_per_task))
        except DemonFormatError as error:
            fail(str(error))
        placement = {"dtype": dtype} if dtype != "auto" else {}
        if device_map is not None:
            placement["device_map"] = device_map
        lvlm: Any = load_lvlm(model, device=context.device, **placement)
        if adapter is not None:
            lvlm = wrap_adapter(lvlm, adapter, allow_other_base=allow_other_base)
        scores = read_or_fail(
            lambda: evaluate_demon(
                lvlm,
                selected,
                out,
                max_per_task,
                batch_size,
                max_new_tokens,
                progress=context.is_main,
                categories=categories,
                context=context,
            ),
            (DemonFormatError, DemonScoringError, DemonRunError, OutputLockedError, ServedError),
            DemonFormatWarning,
        )
    if context.is_main:
        _report(out, scores)

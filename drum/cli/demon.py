"""``drum demon``: score predictions on the DEMON benchmark, or run an LVLM on it and score.

Both write ``<out>/demon_scores.json``, ``<out>/<Task>/sample_scores.jsonl`` and, rendered
from the JSON, ``<out>/demon_scores.md`` and ``<out>/demon_scores.png`` (see docs/demon.md).
A built-in root (``drum demon make-builtin``'s split folders) is aggregated by its card's
categories, the reference's release by the reference's.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from drum.cli.common import (
    DeviceMapOption,
    DeviceOption,
    DtypeOption,
    check_adapter,
    check_device,
    check_model,
    check_out,
    console,
    default_of,
    dist_context,
    fail,
    load_lvlm,
    parse_dtype,
    read_or_fail,
    wrap_adapter,
)

if TYPE_CHECKING:
    from drum.demon.format import DemonTask

app = typer.Typer(no_args_is_help=True, help="The DEMON benchmark: score predictions, or evaluate.")

# drum.demon.run's BATCH_SIZE and MAX_NEW_TOKENS (tests/cli/test_demon.py checks they agree),
# typed here so that `drum --help` imports no drum.demon module.
BATCH_SIZE = 8
MAX_NEW_TOKENS = 300
BUILTIN_CONFIG = "drum.builtin.demon.config:BuiltinDemonConfig"

DataOption = Annotated[
    Path, typer.Option("--data", help="A DEMON release root: <Task>/core/core.json per task.")
]
TasksOption = Annotated[
    str | None, typer.Option("--tasks", help="Comma-separated task folders (default: all).")
]
OutOption = Annotated[Path, typer.Option("--out", help="Directory for the scores and reports.")]


def _task_names(tasks: str | None) -> list[str] | None:
    if tasks is None:
        return None
    names = [name.strip() for name in tasks.split(",") if name.strip()]
    if not names:
        fail(f"--tasks names no task: {tasks!r}")
    return names


def _check_data(data: Path) -> None:
    if not data.is_dir():
        fail(f"--data {data}: no such directory; expected a DEMON root (<Task>/core/core.json)")


def _positive(value: int | None, option: str) -> None:
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


def _report(out: Path, scores: dict[str, Any]) -> None:
    from drum.demon.report import markdown_report, render_report
    from drum.demon.score import SCORES_FILE

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
    from drum.demon.format import DemonFormatError
    from drum.demon.score import score_tasks, with_predictions
    from drum.demon.scoring import DemonScoringError

    _check_data(data)
    names = _task_names(tasks)
    if not predictions.is_dir():
        fail(f"--predictions {predictions}: no such directory; expected <Task>/pred.json")
    check_out(out, "directory")
    found = _read_tasks(data, names)
    categories = _categories(data)
    try:
        selected = with_predictions(found, predictions, required=names is not None)
        scores = score_tasks(
            selected, predictions, out, config={"data": str(data)}, categories=categories
        )
    except (DemonFormatError, DemonScoringError) as error:
        fail(str(error))
    _report(out, scores)


@app.command("eval")
def demon_eval_command(
    model: Annotated[
        str, typer.Option("--model", "-m", help="LVLM: a hub id or a save_pretrained directory.")
    ],
    data: DataOption,
    out: Annotated[
        Path, typer.Option(help="Directory for <Task>/pred.json (resumed), scores and reports.")
    ],
    tasks: TasksOption = None,
    max_per_task: Annotated[
        int | None, typer.Option(help="Evaluate only the first N samples of each task.")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Prompts per generate call.")] = BATCH_SIZE,
    max_new_tokens: Annotated[
        int, typer.Option(help="Greedy decoding length (the reference's 300).")
    ] = MAX_NEW_TOKENS,
    device: DeviceOption = "cpu",
    adapter: Annotated[
        Path | None,
        typer.Option(help="A VPG-C adapter directory (drum vpgc train) to put on the model."),
    ] = None,
    dtype: DtypeOption = "auto",
    device_map: DeviceMapOption = None,
) -> None:
    """Generate greedily into <out>/<Task>/pred.json (a killed run resumes), then score."""
    from drum.demon.format import DemonFormatError
    from drum.demon.run import DemonRunError, evaluate_demon, pending_samples
    from drum.demon.scoring import DemonScoringError

    _check_data(data)
    names = _task_names(tasks)
    _positive(max_per_task, "--max-per-task")
    _positive(batch_size, "--batch-size")
    _positive(max_new_tokens, "--max-new-tokens")
    check_device(device)
    parse_dtype(dtype)
    check_out(out, "directory")
    check_model(model, "--model")
    if adapter is not None:
        check_adapter(adapter)
    selected = _read_tasks(data, names)
    categories = _categories(data)
    try:  # the pred.json files of a run to resume, before the model loads
        for task in selected:
            pending_samples(task, out, max_per_task)
    except DemonFormatError as error:
        fail(str(error))
    # Under torchrun: each rank generates its share of every task (docs/scale.md).
    context = dist_context(device, device_map)
    placement = {"dtype": dtype} if dtype != "auto" else {}
    if device_map is not None:
        placement["device_map"] = device_map
    lvlm: Any = load_lvlm(model, device=context.device, **placement)
    if adapter is not None:
        lvlm = wrap_adapter(lvlm, adapter)
    try:
        scores = evaluate_demon(
            lvlm,
            selected,
            out,
            max_per_task,
            batch_size,
            max_new_tokens,
            progress=context.is_main,
            categories=categories,
            context=context,
        )
    except (DemonFormatError, DemonScoringError, DemonRunError) as error:
        fail(str(error))
    if context.is_main:
        _report(out, scores)


@app.command("make-builtin")
def demon_make_builtin_command(
    out: Annotated[
        Path, typer.Option("--out", help="Root to write: <out>/{train,test}/<Task>/core/.")
    ] = Path("builtin_demon"),
    world: Annotated[
        Path | None,
        typer.Option(help="A built-in world (drum data make-world): image size and noise."),
    ] = None,
    seed: int = default_of(BUILTIN_CONFIG, "seed"),
    n_train: int = default_of(BUILTIN_CONFIG, "n_train"),
    n_test: int = default_of(BUILTIN_CONFIG, "n_test"),
) -> None:
    """Write the built-in DEMON-style tasks (all 7 categories) in the release format."""
    if world is not None and not (world / "world.json").is_file():
        fail(f"--world {world}: no world.json; expected a `drum data make-world` output")
    if out.exists() and not out.is_dir():
        fail(f"--out {out}: is a file; expected a directory to write the tasks into")
    from drum.builtin.demon.config import BuiltinDemonConfig
    from drum.builtin.demon.make import make_builtin_demon

    try:
        config = BuiltinDemonConfig(seed=seed, n_train=n_train, n_test=n_test)
    except ValueError as error:
        fail(str(error))
    dirs = make_builtin_demon(world, out, config)
    console.print(f"{len(dirs)} task folders written under {out} (card: builtin_demon.json)")


LVLM_CONFIG = "drum.builtin.demon.lvlm:DemonLVLMConfig"


@app.command("train-base")
def demon_train_base_command(
    out: Annotated[Path, typer.Option(help="Directory for the trained base LVLM.")] = Path(
        "models/demon_base"
    ),
    embedder: Annotated[
        Path | None,
        typer.Option(help="Built-in CLIP directory (default: the shipped built-in embedder)."),
    ] = None,
    max_steps: int = default_of(LVLM_CONFIG, "max_steps"),
    max_seconds: float = default_of(LVLM_CONFIG, "max_seconds"),
    seed: int = default_of(LVLM_CONFIG, "seed"),
    n_train: Annotated[int, typer.Option(help="Generic training samples per format.")] = 3000,
    n_test: Annotated[int, typer.Option(help="Held-out generic samples per format.")] = 200,
) -> None:
    """Train the built-in DEMON base LVLM on the generic formats (never on the tasks)."""
    from dataclasses import replace

    from drum.builtin.demon.config import BuiltinDemonConfig
    from drum.builtin.demon.lvlm import BASE_CONFIG
    from drum.cli.common import limit_threads
    from drum.pipelines.demon_benchmark import DEFAULT_EMBEDDER, DemonBenchmarkConfig, ensure_base

    check_out(out, "directory")
    try:
        base = replace(BASE_CONFIG, max_steps=max_steps, max_seconds=max_seconds, seed=seed)
        generic = BuiltinDemonConfig(n_train=n_train, n_test=n_test)
    except ValueError as error:
        fail(str(error))
    embedder = embedder or DEFAULT_EMBEDDER
    check_model(str(embedder), "--embedder")
    limit_threads()
    config = DemonBenchmarkConfig(base=base, generic=generic)
    # The generic data goes beside the model, in a folder of its own.
    work = out.parent / f"{out.name}_data"
    base_dir, _ = ensure_base(work, config, embedder, base_dir=out, use_shipped=False)
    console.print(f"DEMON base at {base_dir} (generic data: {work / 'generic'})")


@app.command("freeze-base")
def demon_freeze_base_command(
    base: Annotated[Path, typer.Option(help="A `drum demon train-base` output.")] = Path(
        "models/demon_base"
    ),
    embedder: Annotated[
        Path | None, typer.Option(help="The CLIP it was trained on (default: shipped).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Assets folder (default: the package's assets/demon_base).")
    ] = None,
) -> None:
    """Ship a trained base: copy it into drum/assets/demon_base with its manifest."""
    import json

    from drum.builtin.demon.assets import base_identity, freeze_demon_base, reproduce_lines
    from drum.builtin.demon.config import BuiltinDemonConfig
    from drum.builtin.demon.lvlm import CARD_NAME, DemonLVLMConfig
    from drum.pipelines.demon_benchmark import DEFAULT_EMBEDDER

    card_path = base / CARD_NAME
    if not card_path.is_file():
        fail(f"--base {base}: no {CARD_NAME}; expected a `drum demon train-base` output")
    identity = json.loads(card_path.read_text(encoding="utf-8"))["identity"]
    config = DemonLVLMConfig(**identity["config"])
    generic = BuiltinDemonConfig(**identity["generic_data"])
    embedder = embedder or DEFAULT_EMBEDDER
    from drum.builtin.demon.assets import DEMON_BASE_DIR

    out = freeze_demon_base(
        base,
        base_identity(config, generic, embedder),
        reproduce_lines(config, generic),
        out or DEMON_BASE_DIR,
    )
    console.print(f"DEMON base frozen into {out}")


@app.command("benchmark")
def demon_benchmark_command(
    out: Annotated[Path, typer.Option(help="Directory for data, models, predictions, results.")] = (
        Path("runs/demon")
    ),
    tasks: TasksOption = None,
    n_train: Annotated[int, typer.Option(help="Train samples per task (the ceiling's).")] = 1000,
    n_test: Annotated[int, typer.Option(help="Test samples per task.")] = 300,
    ceiling: Annotated[
        bool, typer.Option(help="Fine-tune the base per task for the supervised ceiling.")
    ] = True,
    ceiling_steps: Annotated[int, typer.Option(help="Fine-tuning steps per task.")] = 300,
    batch_size: Annotated[int, typer.Option(help="Prompts per generate call.")] = 32,
) -> None:
    """The built-in DEMON-style benchmark: chance, the base zero-shot and the ceiling."""
    from dataclasses import replace

    from drum.cli.common import limit_threads, show_tables
    from drum.pipelines.demon_benchmark import (
        DemonBenchmarkConfig,
        markdown_table,
        run_demon_benchmark,
    )

    check_out(out, "directory")
    _positive(batch_size, "--batch-size")
    default = DemonBenchmarkConfig()
    try:
        config = replace(
            default,
            data=replace(default.data, n_train=n_train, n_test=n_test),
            ceiling=replace(default.ceiling, max_steps=ceiling_steps),
            tasks=tuple(_task_names(tasks) or default.tasks),
            with_ceiling=ceiling,
            batch_size=batch_size,
        )
    except ValueError as error:
        fail(str(error))
    limit_threads()
    results = run_demon_benchmark(out, config)
    markdown = markdown_table(results)
    show_tables(markdown, markdown)
    console.print(f"results: {out / 'demon_benchmark.json'} (table: demon_benchmark.md)")

"""``drum demon make-builtin / train-base / freeze-base / benchmark``: the built-in DEMON-style
benchmark (``drum.builtin.demon``): its tasks, its base LVLM, shipping the base, and the whole
benchmark run (chance, the base zero-shot, the supervised ceiling).

The commands are added to the ``drum demon`` group by ``drum.cli.app``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from drum.cli.common import check_model, check_out, console, fail
from drum.cli.defaults import default_of
from drum.cli.demon import TasksOption, positive, task_names

BUILTIN_CONFIG = "drum.builtin.demon.config:BuiltinDemonConfig"
LVLM_CONFIG = "drum.builtin.demon.lvlm:DemonLVLMConfig"
BENCHMARK_CONFIG = "drum.pipelines.demon_benchmark:DemonBenchmarkConfig"


def make_builtin_command(
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


def train_base_command(
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
    n_train: Annotated[int, typer.Option(help="Generic training samples per format.")] = default_of(
        BENCHMARK_CONFIG, "generic.n_train"
    ),
    n_test: Annotated[int, typer.Option(help="Held-out generic samples per format.")] = default_of(
        BENCHMARK_CONFIG, "generic.n_test"
    ),
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


def freeze_base_command(
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


def benchmark_command(
    out: Annotated[Path, typer.Option(help="Directory for data, models, predictions, results.")] = (
        Path("runs/demon")
    ),
    tasks: TasksOption = None,
    n_train: Annotated[
        int, typer.Option(help="Train samples per task (the ceiling's).")
    ] = default_of(BENCHMARK_CONFIG, "data.n_train"),
    n_test: Annotated[int, typer.Option(help="Test samples per task.")] = default_of(
        BENCHMARK_CONFIG, "data.n_test"
    ),
    ceiling: Annotated[
        bool, typer.Option(help="Fine-tune the base per task for the supervised ceiling.")
    ] = default_of(BENCHMARK_CONFIG, "with_ceiling"),
    ceiling_steps: Annotated[int, typer.Option(help="Fine-tuning steps per task.")] = default_of(
        BENCHMARK_CONFIG, "ceiling.max_steps"
    ),
    batch_size: Annotated[int, typer.Option(help="Prompts per generate call.")] = default_of(
        BENCHMARK_CONFIG, "batch_size"
    ),
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
    positive(batch_size, "--batch-size")
    default = DemonBenchmarkConfig()
    try:
        config = replace(
            default,
            data=replace(default.data, n_train=n_train, n_test=n_test),
            ceiling=replace(default.ceiling, max_steps=ceiling_steps),
            tasks=tuple(task_names(tasks) or default.tasks),
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

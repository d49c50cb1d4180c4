"""``drum vpgc train-blip2 / freeze-blip2 / bottleneck``: the built-in BLIP-2 whose Q-Former
drops a detail, and VPG-C measured on it (``drum.pipelines.vpgc_bottleneck``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from drum.cli.common import check_out, default_of, fail, limit_threads

BASE_CONFIG = "drum.builtin.blip2.train:BuiltinBlip2Config"


def train_blip2_command(
    out: Annotated[Path, typer.Option(help="Directory for the three stages and the card.")],
    seed: Annotated[int, typer.Option(help="Seed of every stage.")] = default_of(
        BASE_CONFIG, "seed"
    ),
) -> None:
    """Train the built-in BLIP-2 (vision tower, stage A, stage B) and check its gates."""
    from drum.builtin.blip2.train import BuiltinBlip2Config, train_builtin_blip2

    check_out(out, "directory")
    limit_threads()
    card = train_builtin_blip2(out, BuiltinBlip2Config(seed=seed))
    for gate in card["gates"]:
        mark = "pass" if gate["passed"] else "FAIL"
        relation = ">=" if gate["at_least"] else "<="
        typer.echo(
            f"{mark}  {gate['name']}: {gate['value']:.3f} {relation} {gate['threshold']:.3f}"
        )
    if not card["passed"]:
        fail(f"{out}: the built-in BLIP-2 failed its gates (see {out / 'builtin_blip2.json'})")
    typer.echo(str(out))


def freeze_blip2_command(
    trained: Annotated[Path, typer.Option(help="A directory drum vpgc train-blip2 wrote.")],
) -> None:
    """Ship a trained built-in BLIP-2 (stages A and B) as the package's asset, with a
    SHA-256 manifest; refuses a run whose gates failed."""
    from drum.builtin.blip2.assets import Blip2AssetError, freeze_builtin_blip2

    if not (trained / "builtin_blip2.json").is_file():
        fail(f"--trained {trained}: no builtin_blip2.json (run drum vpgc train-blip2 first)")
    try:
        typer.echo(str(freeze_builtin_blip2(trained)))
    except Blip2AssetError as error:
        fail(str(error))


def bottleneck_command(
    out: Annotated[Path, typer.Option(help="Directory for data, arms, predictions, results.")] = (
        Path("runs/vpgc_blip2")
    ),
    max_steps: Annotated[
        int | None, typer.Option(help="Training steps per arm (default: the recipe's 6000).")
    ] = None,
) -> None:
    """VPG-C zero-shot on held-out tasks of the built-in BLIP-2: base, VPG-C (3 seeds), random
    regions, same-size LoRA, queries only, VPG-C trained on the held-out tasks, stage A."""
    from dataclasses import replace

    from drum.cli.common import show_tables
    from drum.pipelines.vpgc_bottleneck import BottleneckConfig, run_vpgc_bottleneck
    from drum.pipelines.vpgc_experiments import markdown_table

    check_out(out, "directory")
    config = BottleneckConfig()
    if max_steps is not None:
        if max_steps < 1:
            fail(f"--max-steps must be a positive integer, got {max_steps}")
        config = replace(config, train=replace(config.train, max_steps=max_steps))
    limit_threads()
    results = run_vpgc_bottleneck(out, config)
    markdown = markdown_table(results)
    show_tables(markdown, markdown)
    typer.echo(f"results: {out / 'vpgc_bottleneck.json'} (table: vpgc_bottleneck.md)")

"""``drum demo``: the main job on the built-in default, end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from drum.cli.common import limit_threads
from drum.cli.defaults import default_of

RUN_DEMO = "drum.pipelines.demo:run_demo"


def demo_command(
    out: Annotated[
        Path, typer.Option(help="Run directory (world, models, cache, results).")
    ] = Path("runs/demo"),
    quick: Annotated[
        bool, typer.Option(help="A small world and short training (smoke run).")
    ] = default_of(RUN_DEMO, "quick"),
    assets: Annotated[
        bool, typer.Option(help="Use the shipped built-in models when they match the world.")
    ] = default_of(RUN_DEMO, "use_assets"),
) -> None:
    """The main job on the built-in default: world -> models -> retrieval -> ICL evaluation."""
    from drum.pipelines.demo import run_demo

    limit_threads()
    run_demo(out, quick=quick, use_assets=assets)

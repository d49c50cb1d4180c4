"""``drum lvlm``: train and freeze the built-in LVLM."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from drum.cli.common import console, limit_threads
from drum.cli.defaults import default_of

LVLM_CONFIG = "drum.builtin.lvlm.train:BuiltinLVLMConfig"

app = typer.Typer(no_args_is_help=True, help="Train, freeze and query LVLMs.")


@app.command("train-builtin")
def lvlm_train_builtin_command(
    world: Path = Path("world"),
    embedder: Annotated[Path, typer.Option(help="The built-in embedder (vision tower).")] = Path(
        "models/embedder"
    ),
    out: Path = Path("models/lvlm"),
    max_seconds: Annotated[float, typer.Option(help="Time cap on training.")] = default_of(
        LVLM_CONFIG, "max_seconds"
    ),
    max_steps: int = default_of(LVLM_CONFIG, "max_steps"),
    seed: int = default_of(LVLM_CONFIG, "seed"),
) -> None:
    """Train the built-in LVLM on in-context episodes (resumes from its last checkpoint)."""
    from drum.builtin.lvlm.train import CARD_NAME, BuiltinLVLMConfig, train_builtin_lvlm

    limit_threads()
    config = BuiltinLVLMConfig(max_seconds=max_seconds, max_steps=max_steps, seed=seed)
    path = train_builtin_lvlm(world, embedder, out, config)
    card = json.loads((path / CARD_NAME).read_text())
    console.print_json(
        data={
            "model": str(path),
            **{k: card[k] for k in ("steps", "train_seconds", "stop_reason", "final_probes")},
        }
    )


@app.command("freeze")
def lvlm_freeze_command(
    world: Path = Path("world"),
    embedder: Path = Path("models/embedder"),
    lvlm: Path = Path("models/lvlm"),
    out: Annotated[
        Path | None, typer.Option(help="Defaults to the package's assets/builtin.")
    ] = None,
) -> None:
    """Ship trained built-in models with the package (copied, with a SHA-256 manifest)."""
    from drum.builtin.assets import ASSETS_DIR, freeze_builtin_models

    console.print(str(freeze_builtin_models(world, embedder, lvlm, out or ASSETS_DIR)))

"""``drum data``: make and check datasets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from drum.cli import importers
from drum.cli.common import console, read_dataset
from drum.cli.defaults import default_of

WORLD_CONFIG = "drum.builtin.world.generate:WorldConfig"

app = typer.Typer(no_args_is_help=True, help="Make, import and check datasets.")
app.add_typer(importers.app, name="import")


@app.command("make-world")
def make_world_command(
    out: Annotated[Path, typer.Option(help="Directory to write the world into.")] = Path("world"),
    seed: int = default_of(WORLD_CONFIG, "seed"),
    n_train: int = default_of(WORLD_CONFIG, "n_train"),
    n_pool: int = default_of(WORLD_CONFIG, "n_pool"),
    n_val: int = default_of(WORLD_CONFIG, "n_val"),
    n_test: int = default_of(WORLD_CONFIG, "n_test"),
) -> None:
    """Generate the built-in world (train / pool / val / test, three task types)."""
    from drum.builtin.world.generate import WorldConfig, make_world

    config = WorldConfig(seed=seed, n_train=n_train, n_pool=n_pool, n_val=n_val, n_test=n_test)
    make_world(out, config)
    console.print(f"world written to {out}")


@app.command("digits")
def digits_command(
    out: Path = Path("data/digits"),
    seed: int = default_of("drum.data.bundled:make_digits_dataset", "seed"),
) -> None:
    """Write scikit-learn's bundled 8x8 digits as a classification dataset."""
    from drum.data.bundled import make_digits_dataset

    paths = make_digits_dataset(out, seed=seed)
    console.print(json.dumps({split: str(path) for split, path in paths.items()}, indent=2))


@app.command("photos")
def photos_command(out: Path = Path("data/photos")) -> None:
    """Write scikit-image's bundled photos as a small captioning dataset."""
    from drum.data.bundled import make_photos_dataset

    console.print(str(make_photos_dataset(out)))


@app.command("check")
def check_command(
    path: Path,
    pool: Annotated[
        bool,
        typer.Option(
            "--pool",
            help="Check it as a pool (demonstrations): every example needs answers.",
        ),
    ] = False,
) -> None:
    """Validate a JSONL dataset (fields, types, duplicate ids, every image decoded in full, at
    least one example): the check every command runs on its data first. Examples without
    answers (queries without references, e.g. a test split) are counted; a pool may hold none."""
    from drum.data.jsonl import count_unanswered

    examples = read_dataset(path, pool=pool)
    unanswered = count_unanswered(examples)
    if unanswered:
        console.print(
            f"{path}: {len(examples)} examples, all valid; {unanswered} without answers "
            "(queries without references: usable for retrieval, not as demonstrations nor "
            "for scoring)",
            soft_wrap=True,
        )
    else:
        console.print(f"{path}: {len(examples)} examples, all valid")

"""``drum vpgc``: train a VPG-C adapter (or a baseline) on synthetic discriminative tasks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from drum.cli.common import check_model, check_out, default_of, fail, limit_threads

app = typer.Typer(no_args_is_help=True, help=__doc__)

TRAIN_CONFIG = "drum.adapters.vpgc.train:VPGCTrainConfig"


def _default_base() -> Path:
    from drum.builtin.demon.assets import DEMON_BASE_DIR

    return Path(DEMON_BASE_DIR) / "model"


@app.command("train")
def vpgc_train_command(
    out: Annotated[
        Path, typer.Option(help="Output: an adapter directory (vpgc) or a model directory.")
    ],
    base: Annotated[
        Path | None,
        typer.Option(help="Base LVLM directory (default: the shipped DEMON base)."),
    ] = None,
    method: Annotated[
        str, typer.Option(help="vpgc (the adapter), projector or lora (baselines).")
    ] = default_of(TRAIN_CONFIG, "method"),
    region: Annotated[
        str, typer.Option(help="Where edits go: attention (least attended) or random.")
    ] = default_of(TRAIN_CONFIG, "region"),
    layer: Annotated[
        int | None, typer.Option(help="VPG-C layer (default: half the decoder layers).")
    ] = default_of(TRAIN_CONFIG, "layer"),
    num_heads: Annotated[int, typer.Option(help="VPG-C re-attention heads.")] = default_of(
        TRAIN_CONFIG, "num_heads"
    ),
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = default_of(TRAIN_CONFIG, "lr"),
    batch_size: Annotated[int, typer.Option(help="Samples per step.")] = default_of(
        TRAIN_CONFIG, "batch_size"
    ),
    max_steps: Annotated[int, typer.Option(help="Training steps.")] = default_of(
        TRAIN_CONFIG, "max_steps"
    ),
    max_seconds: Annotated[float, typer.Option(help="Stop after this many seconds.")] = (
        default_of(TRAIN_CONFIG, "max_seconds")
    ),
    n_train: Annotated[int, typer.Option(help="Synthetic samples per task (4 tasks).")] = (
        default_of(TRAIN_CONFIG, "n_train")
    ),
    seed: Annotated[int, typer.Option(help="Seed of data, weights and draws.")] = default_of(
        TRAIN_CONFIG, "seed"
    ),
    data: Annotated[
        Path | None, typer.Option(help="Synthetic data directory (default: <out>.data).")
    ] = None,
) -> None:
    """Write synthetic tasks (edits where the base attends least) and train on them."""
    from drum.adapters.vpgc.train import VPGCTrainConfig, train_vpgc

    base = base if base is not None else _default_base()
    if not base.is_dir():
        fail(f"--base {base}: no such model directory")
    check_model(str(base), "--base")
    check_out(out, "directory")
    try:
        config = VPGCTrainConfig(
            method=method,
            layer=layer,
            num_heads=num_heads,
            lr=lr,
            batch_size=batch_size,
            max_steps=max_steps,
            max_seconds=max_seconds,
            seed=seed,
            region=region,
            n_train=n_train,
        )
    except ValueError as error:
        fail(str(error))
    limit_threads()
    from drum.adapters.vpgc.config import VPGCConfigError

    try:
        train_vpgc(base, out, config, data_dir=data)
    except VPGCConfigError as error:
        fail(str(error))
    typer.echo(str(out))

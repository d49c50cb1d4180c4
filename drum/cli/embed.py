"""``drum embed``: train the built-in embedder, embed datasets into the cache."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from drum.cli.common import (
    DeviceOption,
    DtypeOption,
    ModelOption,
    check_device,
    check_model,
    check_out,
    console,
    dist_context,
    load_embedder,
    parse_dtype,
    read_dataset,
)
from drum.cli.defaults import default_of

EMBEDDER_CONFIG = "drum.builtin.embedder:BuiltinEmbedderConfig"

app = typer.Typer(no_args_is_help=True, help="Train and run embedders.")


@app.command("train-builtin")
def train_builtin_command(
    world: Path = Path("world"),
    out: Path = Path("models/embedder"),
    steps: int = default_of(EMBEDDER_CONFIG, "steps"),
    seed: int = default_of(EMBEDDER_CONFIG, "seed"),
) -> None:
    """Train the built-in CLIP on the world's train split (skipped when already current)."""
    from drum.builtin.embedder import BuiltinEmbedderConfig, train_builtin_embedder

    path = train_builtin_embedder(world, out, BuiltinEmbedderConfig(steps=steps, seed=seed))
    card = json.loads((path / "drum_embedder.json").read_text())
    console.print_json(
        data={
            "model": str(path),
            **{k: card[k] for k in ("train_seconds", "val_zero_shot_accuracy")},
        }
    )


@app.command("run")
def embed_command(
    data: Annotated[Path, typer.Option(help="JSONL dataset to embed.")],
    model: ModelOption,
    cache: Annotated[Path, typer.Option(help="Embedding cache directory.")] = Path("runs/cache"),
    device: DeviceOption = "cpu",
    dtype: DtypeOption = "auto",
) -> None:
    """Embed a dataset's images and texts into the cache (a second run embeds nothing).

    Under ``torchrun --nproc_per_node N -m drum.cli embed run ...`` each rank embeds its share
    and rank 0 merges the parts: the cache ends up as one process would have written it, and
    a rerun after a killed rank keeps the parts already written (docs/scale.md).
    """
    from drum.embed.cache import EmbeddingCache
    from drum.embed.sharded import embed_dataset

    # Every cheap check first: a bad file or image stops the command before the model loads.
    check_out(cache, "directory", "--cache")
    check_device(device)
    parse_dtype(dtype)
    examples = read_dataset(data)
    check_model(model, "--model")
    context = dist_context(device)
    embedder = load_embedder(model, device=context.device, dtype=dtype)
    stats = embed_dataset(examples, embedder, EmbeddingCache(cache), context, progress=True)
    if context.is_main:
        console.print(
            f"{len(examples)} examples: {stats.cached} cached, {stats.embedded} embedded now"
        )

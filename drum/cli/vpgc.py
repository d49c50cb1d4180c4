"""``drum vpgc``: train a VPG-C adapter (or a baseline) on synthetic discriminative tasks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from drum.cli.common import check_model, check_out, default_of, fail, limit_threads

app = typer.Typer(no_args_is_help=True, help=__doc__)

TRAIN_CONFIG = "drum.adapters.vpgc.train:VPGCTrainConfig"
DATA_CONFIG = "drum.builtin.vpgc.sources:VPGCDataConfig"


def _default_base() -> Path:
    from drum.builtin.demon.assets import DEMON_BASE_DIR

    return Path(DEMON_BASE_DIR) / "model"


def _with_max_steps(config: Any, max_steps: int | None) -> Any:
    """``config`` with its ``train`` config's ``max_steps`` set (``None``: unchanged)."""
    from dataclasses import replace

    if max_steps is None:
        return config
    if max_steps < 1:
        fail(f"--max-steps must be a positive integer, got {max_steps}")
    return replace(config, train=replace(config.train, max_steps=max_steps))


def _base_fields(base: Path) -> dict[str, Any]:
    """What the adapter needs of ``base``, from its ``config.json`` alone (no weights load);
    exit 2 when it is not a vision-language model VPG-C knows."""
    from transformers import AutoConfig

    from drum.adapters.vpgc.model import config_fields
    from drum.lvlm.families import UnsupportedFamilyError

    try:
        return config_fields(AutoConfig.from_pretrained(base))
    except UnsupportedFamilyError as error:
        fail(f"--base {base}: not a vision-language model VPG-C can adapt: {error}")
    except (OSError, ValueError, KeyError, AttributeError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        fail(f"--base {base}: its config.json cannot be read as a model's ({reason})")


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
        str, typer.Option(help="vpgc (the adapter); projector, lora or queries (baselines).")
    ] = default_of(TRAIN_CONFIG, "method"),
    region: Annotated[
        str, typer.Option(help="Where edits go: attention (least attended) or random.")
    ] = default_of(DATA_CONFIG, "region"),
    layer: Annotated[
        int | None, typer.Option(help="VPG-C layer (default: half the decoder layers).")
    ] = default_of(TRAIN_CONFIG, "adapter.layer"),
    num_heads: Annotated[int, typer.Option(help="VPG-C re-attention heads.")] = default_of(
        TRAIN_CONFIG, "adapter.num_heads"
    ),
    hidden_size: Annotated[
        int | None, typer.Option(help="VPG-C re-attention width (default 16; none: vision's).")
    ] = default_of(TRAIN_CONFIG, "adapter.hidden_size"),
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
        default_of(DATA_CONFIG, "n_train")
    ),
    seed: Annotated[int, typer.Option(help="Seed of data, weights and draws.")] = default_of(
        TRAIN_CONFIG, "seed"
    ),
    data: Annotated[
        Path | None, typer.Option(help="Synthetic data directory (default: <out>.data).")
    ] = None,
    source: Annotated[
        str,
        typer.Option(
            help="Images of the synthetic data: world (the built-in world's 32 px scenes), "
            "photos (edited scikit-image photos at the base's image size) or auto (world for "
            "a base reading 32 px images, photos for any other); episodes: in-context episodes "
            "with an edited twin, for the built-in world LVLM (drum vpgc icl)."
        ),
    ] = default_of(DATA_CONFIG, "source"),
) -> None:
    """Write synthetic tasks (edits where the base attends least) and train on them."""
    from drum.adapters.vpgc.config import VPGCConfig, VPGCConfigError
    from drum.adapters.vpgc.train import VPGCTrainConfig
    from drum.builtin.vpgc.sources import VPGCDataConfig, train_on_synthetic

    base = base if base is not None else _default_base()
    if not base.is_dir():
        fail(f"--base {base}: no such model directory")
    check_model(str(base), "--base")
    check_out(out, "directory")
    fields = _base_fields(base)
    try:
        config = VPGCTrainConfig(
            method=method,
            adapter=VPGCConfig(layer=layer, num_heads=num_heads, hidden_size=hidden_size),
            lr=lr,
            batch_size=batch_size,
            max_steps=max_steps,
            max_seconds=max_seconds,
            seed=seed,
        )
        data_config = VPGCDataConfig(source=source, n_train=n_train, region=region)
    except ValueError as error:
        fail(str(error))
    # The adapter is built over the base whatever the method (its size is every baseline's
    # budget), so its options are checked against the base's config for every method.
    try:
        config.adapter.resolve(**fields)
    except VPGCConfigError as error:
        fail(f"--base {base}: {error}")
    if method == "queries" and fields["base_kind"] != "qformer":
        fail(
            f"--method queries needs a Q-Former base (BLIP-2); --base {base} is "
            f"{fields['model_type']}"
        )
    if region == "attention" and fields["base_kind"] == "cross_attention":
        fail(
            f"--region attention reads where the base's prompt attends among its visual tokens; "
            f"--base {base} is {fields['model_type']}, whose images reach it through "
            "cross-attention layers (no visual tokens): use --region random"
        )
    limit_threads()
    try:
        train_on_synthetic(base, out, config, data_config, data_dir=data)
    except VPGCConfigError as error:
        fail(str(error))
    typer.echo(str(out))


@app.command("experiments")
def vpgc_experiments_command(
    out: Annotated[Path, typer.Option(help="Directory for arms, predictions, results.")] = Path(
        "runs/vpgc"
    ),
    demon: Annotated[
        Path, typer.Option(help="The built-in benchmark's directory (made if missing).")
    ] = Path("runs/demon"),
    full: Annotated[
        bool, typer.Option(help="Three seeds for VPG-C (attention and random regions).")
    ] = False,
    max_steps: Annotated[
        int | None, typer.Option(help="Training steps per arm (default: the train config's).")
    ] = None,
) -> None:
    """VPG-C vs base, random regions, same-data baselines, layers, ceiling (zero-shot)."""

    from drum.cli.common import show_tables
    from drum.pipelines.vpgc_experiments import (
        FULL_ARMS,
        REDUCED_ARMS,
        VPGCExperimentConfig,
        markdown_table,
        run_vpgc_experiments,
    )

    check_out(out, "directory")
    config = VPGCExperimentConfig(arms=FULL_ARMS if full else REDUCED_ARMS)
    config = _with_max_steps(config, max_steps)
    limit_threads()
    results = run_vpgc_experiments(out, config, demon)
    markdown = markdown_table(results)
    show_tables(markdown, markdown)
    typer.echo(f"results: {out / 'vpgc_experiments.json'} (table: vpgc_experiments.md)")


@app.command("icl")
def vpgc_icl_command(
    out: Annotated[Path, typer.Option(help="Directory for the adapter, evaluations, results.")] = (
        Path("runs/vpgc_icl")
    ),
    demo: Annotated[
        Path, typer.Option(help="The demo's directory (drum demo): its world and DRUM embedder.")
    ] = Path("runs/demo"),
    max_queries: Annotated[
        int, typer.Option(help="Test queries per world task (the demo's 300).")
    ] = default_of("drum.pipelines.vpgc_icl:VPGCICLConfig", "max_queries"),
    max_steps: Annotated[
        int | None, typer.Option(help="Adapter training steps (default: the train config's).")
    ] = None,
) -> None:
    """Does VPG-C change few-shot ICL? The world LVLM with and without an adapter trained on
    edited-twin episodes: random / concat / drum demonstrations and the oracle1 probes."""

    from drum.cli.common import show_tables
    from drum.pipelines.vpgc_icl import (
        VPGCICLConfig,
        final_drum_embedder,
        markdown_table,
        run_vpgc_icl,
    )

    check_out(out, "directory")
    if not (demo / "world" / "world.json").is_file():
        fail(f"--demo {demo}: no demo run there (run `make demo` or `drum demo --out {demo}`)")
    try:
        final_drum_embedder(demo)
    except FileNotFoundError as error:
        fail(str(error))
    if max_queries < 1:
        fail(f"--max-queries must be a positive integer, got {max_queries}")
    config = VPGCICLConfig(max_queries=max_queries)
    config = _with_max_steps(config, max_steps)
    limit_threads()
    results = run_vpgc_icl(out, demo, config)
    markdown = markdown_table(results)
    show_tables(markdown, markdown)
    typer.echo(f"results: {out / 'vpgc_icl.json'} (table: vpgc_icl.md)")

"""``drum mine`` / ``drum train`` (the DRUM retriever on LVLM feedback) and ``drum
experiments`` (DRUM vs the baselines, with ablations)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from drum.cli.common import (
    AllowOtherBaseOption,
    DeviceMapOption,
    DeviceOption,
    DtypeOption,
    check_adapter,
    check_device,
    check_lvlm,
    check_model,
    check_out,
    check_scored_tasks,
    console,
    csv_ints,
    dist_context,
    fail,
    load_lvlm,
    parse_dtype,
    show_tables,
    wrap_adapter,
)
from drum.cli.defaults import default_of

MINING_CONFIG = "drum.finetune.config:MiningConfig"
EXPERIMENT_CONFIG = "drum.pipelines.drum_experiments:DrumExperimentConfig"

WorldOption = Annotated[Path, typer.Option(help="A world directory (drum data make-world).")]
LVLMOption = Annotated[
    str,
    typer.Option(
        help="LVLM whose feedback ranks the candidates: a hub id, a directory, or a served "
        "model openai:<base_url>#<model> whose server returns prompt_logprobs (vLLM)."
    ),
]
EmbedderOption = Annotated[str, typer.Option(help="The dual encoder to start from.")]


def _mining_command(default_rounds: Any, doc: str):  # type: ignore[no-untyped-def]
    """A ``drum mine`` / ``drum train`` command: the same job, ``default_rounds`` rounds."""

    def command(
        world: WorldOption = Path("world"),
        lvlm: LVLMOption = "models/lvlm",
        embedder: EmbedderOption = "models/embedder",
        out: Annotated[Path, typer.Option(help="Mining directory (resumable).")] = Path(
            "runs/drum"
        ),
        rounds: Annotated[
            int, typer.Option(help="Rounds of retrieve -> score -> train (1: no mining).")
        ] = default_rounds,
        queries_per_task: int = default_of(MINING_CONFIG, "queries_per_task"),
        candidates: Annotated[
            int, typer.Option(help="Candidates scored per query (M).")
        ] = default_of(MINING_CONFIG, "feedback.candidates"),
        epochs: int = default_of(MINING_CONFIG, "train.epochs"),
        loss: Annotated[str, typer.Option(help="lambda (UDR), listnet or listmle.")] = default_of(
            MINING_CONFIG, "train.loss"
        ),
        relevance: Annotated[
            str, typer.Option(help="feedback (LVLM re-rank) or similarity (ablation).")
        ] = default_of(MINING_CONFIG, "relevance"),
        image_weight: float = default_of(MINING_CONFIG, "train.image_weight"),
        seed: int = default_of(MINING_CONFIG, "train.seed"),
        adapter: Annotated[
            Path | None,
            typer.Option(
                help="An adapter directory (any registered adapter_type, e.g. drum vpgc "
                "train) on the LVLM that scores."
            ),
        ] = None,
        allow_other_base: AllowOtherBaseOption = False,
        device: DeviceOption = "cpu",
        dtype: DtypeOption = "auto",
        device_map: DeviceMapOption = None,
    ) -> None:
        from drum.builtin.world.tasks import world_tasks
        from drum.feedback.scorer import FeedbackConfig
        from drum.finetune.config import MiningConfig, RetrieverTrainConfig
        from drum.finetune.mining import mine
        from drum.lvlm.served.client import ServedError

        check_device(device)
        parse_dtype(dtype)
        try:
            config = MiningConfig(
                rounds=rounds,
                queries_per_task=queries_per_task,
                relevance=relevance,
                feedback=FeedbackConfig(candidates=candidates),
                train=RetrieverTrainConfig(
                    epochs=epochs, loss=loss, image_weight=image_weight, seed=seed
                ),
            )
            tasks = list(world_tasks(world, split="val").values())
        except (ValueError, FileNotFoundError) as error:
            fail(str(error))
        # Cheap checks before the LVLM loads: every pool and query file, the output, models.
        check_scored_tasks(tasks)
        check_out(out, "directory")
        check_lvlm(lvlm, "--lvlm", adapter)
        check_model(embedder, "--embedder")
        if adapter is not None:
            check_adapter(adapter)
        context = dist_context(device, device_map)
        model = load_lvlm(lvlm, "--lvlm", device=context.device, dtype=dtype, device_map=device_map)
        if adapter is not None:
            model = wrap_adapter(model, adapter, allow_other_base=allow_other_base)
        try:
            summary = mine(tasks, model, embedder, out, config, context=context)
        except ValueError as error:
            fail(str(error))
        except ServedError as error:  # a served --lvlm that failed for good
            fail(f"--lvlm: {error}")
        if not context.is_main:
            return
        for record in summary["rounds"]:
            console.print(f"round {record['round']}: {json.dumps(record['validation'])}")
        console.print(f"DRUM embedder: {summary['final_embedder']}")

    command.__doc__ = doc
    return command


mine_command = _mining_command(
    default_of(MINING_CONFIG, "rounds"),
    "Iterative demonstration mining: train the DRUM retriever on LVLM feedback (resumes).",
)
train_command = _mining_command(
    1, "Train the DRUM retriever on LVLM feedback: ``drum mine`` with one round by default."
)


def experiments_command(
    out: Annotated[Path, typer.Option(help="Run directory.")] = Path("runs/experiments"),
    demo: Annotated[
        Path, typer.Option(help="A finished demo run (its world and models are reused).")
    ] = Path("runs/demo"),
    rounds: int = default_of(EXPERIMENT_CONFIG, "mining.rounds"),
    train_seeds: Annotated[str, typer.Option(help="Comma-separated DRUM training seeds.")] = (
        default_of(EXPERIMENT_CONFIG, "train_seeds")
    ),
    max_queries: Annotated[
        int | None, typer.Option(help="Test queries per task (default: all).")
    ] = None,
) -> None:
    """DRUM vs the similarity strategies with ablations: the full table (resumable)."""
    from drum.builtin.assets import ensure_builtin_models
    from drum.builtin.world.generate import WorldConfig
    from drum.builtin.world.tasks import world_tasks
    from drum.finetune.config import MiningConfig
    from drum.finetune.mining import rounds_table
    from drum.pipelines.demo import DEMO_LVLM
    from drum.pipelines.drum_experiments import DrumExperimentConfig, run_drum_experiments

    try:
        config = DrumExperimentConfig(
            mining=MiningConfig(rounds=rounds),
            train_seeds=csv_ints(train_seeds, "--train-seeds"),
            max_queries=max_queries,
        )
    except ValueError as error:
        fail(str(error))
    world = demo / "world"
    if not (world / "world.json").is_file():
        fail(f"{demo} holds no demo world: run `make demo` (or `drum demo --out {demo}`) first")
    # The world's task files, every image decoded, before any model is trained or loaded.
    try:
        tasks = [*world_tasks(world, split="val").values(), *world_tasks(world).values()]
    except FileNotFoundError as error:
        fail(str(error))
    check_scored_tasks(tasks)
    check_out(out, "directory")
    # The demo's models: the shipped ones when they match its world, else those it trained.
    models = ensure_builtin_models(world, demo / "models", WorldConfig(), lvlm_config=DEMO_LVLM)
    results = run_drum_experiments(world, models["embedder"], models["lvlm"], out, config)
    from drum.eval.report import markdown_table
    from drum.eval.terminal import icl_tables, rounds_tables

    show_tables(markdown_table(results), icl_tables(results))
    show_tables(rounds_table(results["mining"]), rounds_tables(results["mining"]))
    console.print(f"results: {out}/drum_results.json (+ .md, .png)")

"""``drum eval``: few-shot in-context learning, tasks x strategies x shots x seeds."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from drum.cli.common import (
    AllowOtherBaseOption,
    DeviceMapOption,
    DeviceOption,
    DtypeOption,
    JointInstructionOption,
    LVLMOption,
    check_adapter,
    check_joint_instruction,
    check_lvlm,
    check_model,
    check_out,
    console,
    csv_ints,
    dist_context,
    fail,
    load_embedder,
    load_lvlm,
    read_or_fail,
    show_tables,
    wrap_adapter,
)
from drum.cli.defaults import default_of

ICL_EVAL_CONFIG = "drum.eval.icl:ICLEvalConfig"
WORLD_TASKS_FACTORY = "drum.builtin.world.tasks:world_tasks"
# ICLEvalConfig has no default strategies (a library caller always names them): the command's
# own choice, the baselines that need one embedder.
STRATEGIES = "random,fixed,image,text,concat"


def embedder_paths(
    values: Sequence[str], drum_embedder: str | None
) -> tuple[dict[str, str], dict[str, str]]:
    """The embedders to serve, by the names strategy specs use (``StrategySpec.embedder``):
    ``{name: path}`` and ``{name: the option that gave it}`` (for error messages).

    Each ``--embedder`` value is ``NAME=PATH``, or a bare ``PATH`` for ``default`` (also a path
    that exists and has ``=`` in it); ``--drum-embedder PATH`` is ``--embedder drum=PATH``.
    Exits 2 on a malformed value, a name no registered strategy uses, or a name given twice.
    """
    from drum.retrieve.strategies import DEFAULT_EMBEDDER, STRATEGY_REGISTRY

    given: list[tuple[str, str, str]] = []  # (option, name, path)
    for value in values:
        name, equals, path = value.partition("=")
        if not equals or Path(value).exists():
            given.append(("--embedder", DEFAULT_EMBEDDER, value))
        elif not name or not path:
            fail(f"--embedder takes PATH or NAME=PATH, got {value!r}")
        else:
            given.append((f"--embedder {name}=...", name, path))
    if drum_embedder is not None:
        given.append(("--drum-embedder", "drum", drum_embedder))
    known = sorted({STRATEGY_REGISTRY.get(s).embedder for s in STRATEGY_REGISTRY.names()})
    paths: dict[str, str] = {}
    options: dict[str, str] = {}
    for option, name, path in given:
        if name not in known:
            fail(
                f"--embedder {name}={path}: no registered strategy uses an embedder named "
                f"{name!r}; the names strategies use: {known}"
            )
        if name in paths:
            fail(f"embedder {name!r} given twice ({options[name]} and {option})")
        paths[name], options[name] = path, option
    return paths, options


def eval_command(
    out: Annotated[Path, typer.Option(help="Directory for icl_results.json / .md / .png.")],
    model: LVLMOption,
    world: Annotated[
        Path | None, typer.Option(help="A world directory (drum data make-world).")
    ] = None,
    task: Annotated[
        str | None,
        typer.Option(help="Comma-separated world tasks (default: all three; needs --world)."),
    ] = None,
    task_file: Annotated[
        list[Path] | None, typer.Option(help="A JSON task file (repeatable).")
    ] = None,
    strategy: Annotated[
        str, typer.Option(help="Comma-separated retrieval strategies.")
    ] = STRATEGIES,
    shots: Annotated[
        str, typer.Option(help="Comma-separated shot counts (0: zero-shot).")
    ] = default_of(ICL_EVAL_CONFIG, "shots"),
    seeds: Annotated[
        str, typer.Option(help="Comma-separated seeds for the random / fixed strategies.")
    ] = default_of(ICL_EVAL_CONFIG, "seeds"),
    embedder: Annotated[
        list[str] | None,
        typer.Option(
            help="Dual encoder for the similarity strategies; NAME=PATH serves the embedder "
            "NAME that a registered strategy names (repeatable; a bare PATH is 'default'). "
            "An embedder of a joint strategy (joint=PATH for strategy 'joint') is an LVLM "
            "(any --model checkpoint) read as a joint image+text embedder."
        ),
    ] = None,
    drum_embedder: Annotated[
        str | None,
        typer.Option(help="The DRUM-trained dual encoder (drum mine) for strategy 'drum'."),
    ] = None,
    adapter: Annotated[
        Path | None,
        typer.Option(
            help="An adapter directory (any registered adapter_type, e.g. drum vpgc train) to "
            "put on the model."
        ),
    ] = None,
    allow_other_base: AllowOtherBaseOption = False,
    split: Annotated[str, typer.Option(help="World query split: test or val.")] = default_of(
        WORLD_TASKS_FACTORY, "split"
    ),
    max_queries: Annotated[
        int | None, typer.Option(help="Evaluate only the first N queries of each task.")
    ] = None,
    batch_size: int = default_of(ICL_EVAL_CONFIG, "batch_size"),
    order: str = default_of(ICL_EVAL_CONFIG, "order"),
    image_weight: float = default_of(ICL_EVAL_CONFIG, "image_weight"),
    bootstrap_resamples: int = default_of(ICL_EVAL_CONFIG, "bootstrap_resamples"),
    corpus_bootstrap_resamples: int = default_of(ICL_EVAL_CONFIG, "corpus_bootstrap_resamples"),
    corpus_ci: Annotated[
        str, typer.Option(help="rescore (exact) or fixed_statistics (fast) CIs for CIDEr/ROUGE-L.")
    ] = default_of(ICL_EVAL_CONFIG, "corpus_ci"),
    cache: Annotated[Path, typer.Option(help="Embedding cache directory.")] = Path("runs/cache"),
    joint_instruction: JointInstructionOption = "",
    feedback_cache: Annotated[
        Path | None,
        typer.Option(
            help="An LVLM feedback cache (drum mine's feedback.jsonl): the per-query records "
            "show the cached feedback of each demonstration (nothing new is scored)."
        ),
    ] = None,
    device: DeviceOption = "cpu",
    dtype: DtypeOption = "auto",  # device placement (docs/scale.md)
    device_map: DeviceMapOption = None,
) -> None:
    """In-context learning: tasks x strategies x shots x seeds -> metrics with 95% CIs."""
    from drum.builtin.world.tasks import world_tasks
    from drum.eval.icl import ICLEvalConfig, check_eval, run_icl_eval
    from drum.eval.report import markdown_table
    from drum.eval.terminal import icl_tables
    from drum.tasks.spec import TaskFileError, TaskSpec, load_task_file

    tasks: list[TaskSpec] = []
    if world is not None:
        try:
            available = world_tasks(world, split=split)
        except (ValueError, FileNotFoundError) as error:
            fail(str(error))
        names = [n.strip() for n in (task or ",".join(available)).split(",") if n.strip()]
        unknown = [name for name in names if name not in available]
        if unknown:
            fail(f"unknown task(s) {unknown}; the world has {list(available)}")
        tasks += [available[name] for name in names]
    elif task is not None:
        fail("--task names world tasks and needs --world (or use --task-file)")
    for path in task_file or []:
        try:
            tasks.append(load_task_file(path))
        except TaskFileError as error:
            fail(str(error))
    if not tasks:
        fail("nothing to evaluate: give --world (with --task) and/or --task-file")
    try:
        config = ICLEvalConfig(
            strategies=tuple(s.strip() for s in strategy.split(",") if s.strip()),
            shots=csv_ints(shots, "--shots"),
            seeds=csv_ints(seeds, "--seeds"),
            order=order,
            image_weight=image_weight,
            batch_size=batch_size,
            max_queries=max_queries,
            bootstrap_resamples=bootstrap_resamples,
            corpus_bootstrap_resamples=corpus_bootstrap_resamples,
            corpus_ci=corpus_ci,
        )
    except ValueError as error:
        fail(str(error))
    paths, options = embedder_paths(embedder or [], drum_embedder)
    joint_parts = any("joint" in config.embedder_parts(n) for n in config.required_embedders)
    check_joint_instruction(joint_instruction, joint_parts, strategy)
    # Every check that needs no model runs before the (slow) models load: the options, each
    # task's pool and queries (every image decoded), shots against pools, the output, and the
    # model arguments.
    from drum.data.jsonl import DataWarning

    loaded = read_or_fail(  # each task read once (every image decoded), handed down
        lambda: check_eval(tasks, config, paths, verify_images=True), ValueError, DataWarning
    )
    check_out(out, "directory")
    if feedback_cache is not None and not feedback_cache.is_file():
        fail(f"--feedback-cache {feedback_cache}: no such file; expected a feedback.jsonl")
    check_lvlm(model, "--model", adapter)
    if adapter is not None:
        check_adapter(adapter)
    for name in config.required_embedders:
        check_model(paths[name], options[name])
    from drum.embed.cache import EmbeddingCache
    from drum.eval.icl import FeedbackLookup
    from drum.feedback.cache import FeedbackCache

    feedback = None
    if feedback_cache is not None:
        try:
            feedback = FeedbackLookup(FeedbackCache(feedback_cache))
        except ValueError as error:  # DataError: a malformed line, naming file and line
            fail(str(error))

    # Under torchrun: each rank generates its share of every row (docs/scale.md).
    context = dist_context(device, device_map)
    device = context.device
    lvlm = load_lvlm(model, device=device, dtype=dtype, device_map=device_map)
    encoders = {}
    for name in config.required_embedders:
        joint = "joint" in config.embedder_parts(name)
        # The evaluated LVLM as its own joint embedder: one copy of the weights.
        same = joint and paths[name] == model and adapter is None
        encoders[name] = load_embedder(
            paths[name],
            options[name],
            device=device,
            dtype=dtype,
            joint=joint,
            lvlm=lvlm if same else None,
            instruction=joint_instruction if joint else "",
        )
    if adapter is not None:
        lvlm = wrap_adapter(lvlm, adapter, allow_other_base=allow_other_base)
    from drum.lvlm.context import ContextOverflowError
    from drum.lvlm.served.client import ServedError

    try:
        results = run_icl_eval(
            loaded,
            lvlm,
            config,
            encoders,
            out,
            cache=EmbeddingCache(cache) if encoders else None,
            feedback=feedback,
            progress=context.is_main,
            context=context,
        )
    except ContextOverflowError as error:  # a prompt the model cannot read: one line, exit 2
        fail(str(error))
    except ServedError as error:  # a served --model that failed for good: one line, exit 2
        fail(f"--model: {error}")
    if not context.is_main:
        return
    show_tables(markdown_table(results), icl_tables(results))
    console.print(
        f"results: {out / 'icl_results.json'} (+ .md, .png; per-query records: "
        f"{out / 'icl_queries.jsonl'}, drum report --results {out} shows them)"
    )

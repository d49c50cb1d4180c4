"""``drum``: the command-line entry point (``drum --help`` lists the subcommands)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
data_app = typer.Typer(no_args_is_help=True, help="Make and check datasets.")
embed_app = typer.Typer(no_args_is_help=True, help="Train and run embedders.")
index_app = typer.Typer(no_args_is_help=True, help="Build and query FAISS indexes.")
lvlm_app = typer.Typer(no_args_is_help=True, help="Train, freeze and query LVLMs.")
app.add_typer(data_app, name="data")
app.add_typer(embed_app, name="embed")
app.add_typer(index_app, name="index")
app.add_typer(lvlm_app, name="lvlm")
console = Console(stderr=True)

ModelOption = Annotated[
    str, typer.Option("--model", "-m", help="Embedder: a hub id or a save_pretrained directory.")
]


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code=2)


@data_app.command("make-world")
def make_world_command(
    out: Annotated[Path, typer.Option(help="Directory to write the world into.")] = Path("world"),
    seed: int = 0,
    n_train: int = 20000,
    n_pool: int = 2000,
    n_val: int = 500,
    n_test: int = 1000,
) -> None:
    """Generate the built-in world (train / pool / val / test, three task types)."""
    from drum.builtin.world.generate import WorldConfig, make_world

    config = WorldConfig(seed=seed, n_train=n_train, n_pool=n_pool, n_val=n_val, n_test=n_test)
    make_world(out, config)
    console.print(f"world written to {out}")


@data_app.command("digits")
def digits_command(out: Path = Path("data/digits"), seed: int = 0) -> None:
    """Write scikit-learn's bundled 8x8 digits as a classification dataset."""
    from drum.data.bundled import make_digits_dataset

    paths = make_digits_dataset(out, seed=seed)
    console.print(json.dumps({split: str(path) for split, path in paths.items()}, indent=2))


@data_app.command("photos")
def photos_command(out: Path = Path("data/photos")) -> None:
    """Write scikit-image's bundled photos as a small captioning dataset."""
    from drum.data.bundled import make_photos_dataset

    console.print(str(make_photos_dataset(out)))


@data_app.command("check")
def check_command(path: Path) -> None:
    """Validate a JSONL dataset (fields, types, duplicate ids, every image readable)."""
    from drum.data.jsonl import DataError, read_examples

    try:
        examples = read_examples(path)
    except DataError as error:
        _fail(str(error))
    console.print(f"{path}: {len(examples)} examples, all valid")


@embed_app.command("train-builtin")
def train_builtin_command(
    world: Path = Path("world"),
    out: Path = Path("models/embedder"),
    steps: int = 1500,
    seed: int = 0,
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


@embed_app.command("run")
def embed_command(
    data: Annotated[Path, typer.Option(help="JSONL dataset to embed.")],
    model: ModelOption,
    cache: Annotated[Path, typer.Option(help="Embedding cache directory.")] = Path("runs/cache"),
) -> None:
    """Embed a dataset's images and texts into the cache (a second run embeds nothing)."""
    from drum.data.jsonl import read_examples
    from drum.embed.cache import EmbeddingCache
    from drum.embed.hf import HFDualEncoder
    from drum.retrieve.retriever import PoolEmbeddings

    embedder = HFDualEncoder(model)
    store = EmbeddingCache(cache)
    examples = read_examples(data)
    PoolEmbeddings.compute(examples, embedder, store, progress=True)
    console.print(f"{len(examples)} examples: {store.hits} cached, {store.misses} embedded now")


@index_app.command("build")
def index_build_command(
    pool: Annotated[Path, typer.Option(help="JSONL pool.")],
    model: ModelOption,
    out: Annotated[Path, typer.Option(help="Directory to save the index in.")],
    strategy: str = "concat",
    image_weight: float = 0.5,
    factory: Annotated[str, typer.Option(help="FAISS index_factory string.")] = "Flat",
    cache: Path = Path("runs/cache"),
) -> None:
    """Build and save a FAISS index over a pool's vectors for one strategy."""
    from drum.data.jsonl import read_examples
    from drum.embed.cache import EmbeddingCache
    from drum.embed.hf import HFDualEncoder
    from drum.index import IndexConfig, VectorIndex
    from drum.retrieve.retriever import PoolEmbeddings
    from drum.retrieve.strategies import RetrievalConfig, pool_vectors

    config = RetrievalConfig(strategy=strategy, image_weight=image_weight)
    if not config.uses_similarity:
        _fail(f"strategy {strategy!r} does not use an index")
    embedder = HFDualEncoder(model)
    examples = read_examples(pool)
    embeddings = PoolEmbeddings.compute(examples, embedder, EmbeddingCache(cache), progress=True)
    vectors = pool_vectors(config, embeddings.image, embeddings.text)
    index = VectorIndex(vectors.shape[1], IndexConfig(factory=factory))
    index.add(vectors, [e.id for e in examples])
    index.save(
        out,
        meta={
            "pool": str(pool.resolve()),
            "embedder": embedder.fingerprint,
            "strategy": strategy,
            "image_weight": image_weight,
        },
    )
    console.print(f"index of {len(examples)} vectors (dim {vectors.shape[1]}) saved to {out}")


@app.command("retrieve")
def retrieve_command(
    pool: Annotated[Path, typer.Option(help="JSONL pool of demonstrations.")],
    queries: Annotated[Path, typer.Option(help="JSONL queries.")],
    out: Annotated[Path, typer.Option(help="Output JSONL: per query, demo ids and scores.")],
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Embedder (similarity strategies).")
    ] = None,
    strategy: str = "concat",
    k: int = 4,
    order: str = "similar_last",
    image_weight: float = 0.5,
    seed: int = 0,
    cache: Path = Path("runs/cache"),
) -> None:
    """Choose k demonstrations per query and write them as JSONL (in prompt order)."""
    from drum.data.jsonl import DataError, read_examples
    from drum.embed.cache import EmbeddingCache
    from drum.retrieve.retriever import DemonstrationRetriever, PoolEmbeddings
    from drum.retrieve.strategies import RetrievalConfig
    from drum.utils.io import atomic_open

    try:
        config = RetrievalConfig(
            strategy=strategy, k=k, order=order, image_weight=image_weight, seed=seed
        )
        pool_examples, query_examples = read_examples(pool), read_examples(queries)
    except (ValueError, DataError) as error:
        _fail(str(error))
    pool_side: PoolEmbeddings | list = pool_examples
    query_embeddings = None
    if config.uses_similarity:
        if model is None:
            _fail(f"strategy {strategy!r} needs --model")
        from drum.embed.hf import HFDualEncoder

        embedder = HFDualEncoder(model)
        store = EmbeddingCache(cache)
        pool_side = PoolEmbeddings.compute(pool_examples, embedder, store, progress=True)
        query_embeddings = PoolEmbeddings.compute(query_examples, embedder, store, progress=True)
    retrievals = DemonstrationRetriever(pool_side, config).retrieve(
        query_examples, query_embeddings
    )
    with atomic_open(out) as handle:
        for retrieval in retrievals:
            record = {
                "query_id": retrieval.query_id,
                "strategy": strategy,
                "demos": [
                    {"id": demo_id, "score": score}
                    for demo_id, score in zip(retrieval.demo_ids, retrieval.scores, strict=True)
                ],
            }
            handle.write(json.dumps(record) + "\n")
    console.print(f"{len(retrievals)} queries -> {out}")


@lvlm_app.command("train-builtin")
def lvlm_train_builtin_command(
    world: Path = Path("world"),
    embedder: Annotated[Path, typer.Option(help="The built-in embedder (vision tower).")] = Path(
        "models/embedder"
    ),
    out: Path = Path("models/lvlm"),
    max_seconds: Annotated[float, typer.Option(help="Time cap on training.")] = 1800.0,
    max_steps: int = 6000,
    seed: int = 0,
) -> None:
    """Train the built-in LVLM on in-context episodes (resumes from its last checkpoint)."""
    from drum.builtin.lvlm.train import CARD_NAME, BuiltinLVLMConfig, train_builtin_lvlm

    config = BuiltinLVLMConfig(max_seconds=max_seconds, max_steps=max_steps, seed=seed)
    path = train_builtin_lvlm(world, embedder, out, config)
    card = json.loads((path / CARD_NAME).read_text())
    console.print_json(
        data={
            "model": str(path),
            **{k: card[k] for k in ("steps", "train_seconds", "stop_reason", "final_probes")},
        }
    )


@lvlm_app.command("freeze")
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


@app.command("strategies")
def strategies_command() -> None:
    """List the retrieval strategies."""
    from drum.retrieve.strategies import STRATEGIES

    for name in STRATEGIES:
        typer.echo(name)


def _csv_ints(value: str, option: str) -> tuple[int, ...]:
    try:
        return tuple(int(item) for item in value.split(",") if item.strip())
    except ValueError:
        _fail(f"{option} must be comma-separated integers, got {value!r}")
        raise  # unreachable: _fail exits


@app.command("eval")
def eval_command(
    out: Annotated[Path, typer.Option(help="Directory for icl_results.json / .md / .png.")],
    model: Annotated[
        str, typer.Option("--model", "-m", help="LVLM: a hub id or a save_pretrained directory.")
    ],
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
    ] = "random,fixed,image,text,concat",
    shots: Annotated[str, typer.Option(help="Comma-separated shot counts (0: zero-shot).")] = (
        "0,1,2,4,8"
    ),
    seeds: Annotated[
        str, typer.Option(help="Comma-separated seeds for the random / fixed strategies.")
    ] = "0",
    embedder: Annotated[
        str | None, typer.Option(help="Dual encoder for the similarity strategies.")
    ] = None,
    drum_embedder: Annotated[
        str | None,
        typer.Option(help="The DRUM-trained dual encoder (drum mine) for strategy 'drum'."),
    ] = None,
    split: Annotated[str, typer.Option(help="World query split: test or val.")] = "test",
    max_queries: Annotated[
        int | None, typer.Option(help="Evaluate only the first N queries of each task.")
    ] = None,
    batch_size: int = 32,
    order: str = "similar_last",
    image_weight: float = 0.5,
    bootstrap_resamples: int = 1000,
    corpus_bootstrap_resamples: int = 200,
    corpus_ci: Annotated[
        str, typer.Option(help="rescore (exact) or fixed_statistics (fast) CIs for CIDEr/ROUGE-L.")
    ] = "rescore",
    cache: Annotated[Path, typer.Option(help="Embedding cache directory.")] = Path("runs/cache"),
    device: str = "cpu",
) -> None:
    """In-context learning: tasks x strategies x shots x seeds -> metrics with 95% CIs."""
    from drum.eval.icl import ICLEvalConfig, check_eval, run_icl_eval
    from drum.eval.report import markdown_table
    from drum.tasks.spec import TaskFileError, TaskSpec, load_task_file, world_tasks

    tasks: list[TaskSpec] = []
    if world is not None:
        try:
            available = world_tasks(world, split=split)
        except (ValueError, FileNotFoundError) as error:
            _fail(str(error))
        names = [n.strip() for n in (task or ",".join(available)).split(",") if n.strip()]
        unknown = [name for name in names if name not in available]
        if unknown:
            _fail(f"unknown task(s) {unknown}; the world has {list(available)}")
        tasks += [available[name] for name in names]
    elif task is not None:
        _fail("--task names world tasks and needs --world (or use --task-file)")
    for path in task_file or []:
        try:
            tasks.append(load_task_file(path))
        except TaskFileError as error:
            _fail(str(error))
    if not tasks:
        _fail("nothing to evaluate: give --world (with --task) and/or --task-file")
    try:
        config = ICLEvalConfig(
            strategies=tuple(s.strip() for s in strategy.split(",") if s.strip()),
            shots=_csv_ints(shots, "--shots"),
            seeds=_csv_ints(seeds, "--seeds"),
            order=order,
            image_weight=image_weight,
            batch_size=batch_size,
            max_queries=max_queries,
            bootstrap_resamples=bootstrap_resamples,
            corpus_bootstrap_resamples=corpus_bootstrap_resamples,
            corpus_ci=corpus_ci,
        )
        # Embedders by the names strategy specs use: --drum-embedder serves strategy 'drum'.
        given = {"default": embedder, "drum": drum_embedder}
        paths = {name: path for name, path in given.items() if path is not None}
        # Every check that needs no model runs before the (slow) model loads.
        check_eval(tasks, config, paths)
    except ValueError as error:
        _fail(str(error))
    from drum.embed.cache import EmbeddingCache
    from drum.embed.hf import HFDualEncoder
    from drum.lvlm.hf import HFLVLM

    encoders = {
        name: HFDualEncoder(paths[name], device=device) for name in config.required_embedders
    }
    results = run_icl_eval(
        tasks,
        HFLVLM(model, device=device),
        config,
        encoders,
        out,
        cache=EmbeddingCache(cache) if encoders else None,
    )
    typer.echo(markdown_table(results))
    console.print(f"results: {out / 'icl_results.json'} (+ .md, .png)")


WorldOption = Annotated[Path, typer.Option(help="A world directory (drum data make-world).")]
LVLMOption = Annotated[str, typer.Option(help="LVLM whose feedback ranks the candidates.")]
EmbedderOption = Annotated[str, typer.Option(help="The dual encoder to start from.")]


def _mining_command(default_rounds: int, doc: str):  # type: ignore[no-untyped-def]
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
        queries_per_task: int = 600,
        candidates: Annotated[int, typer.Option(help="Candidates scored per query (M).")] = 30,
        epochs: int = 3,
        loss: Annotated[str, typer.Option(help="lambda (UDR), listnet or listmle.")] = "lambda",
        relevance: Annotated[
            str, typer.Option(help="feedback (LVLM re-rank) or similarity (ablation).")
        ] = "feedback",
        image_weight: float = 0.5,
        seed: int = 0,
        device: str = "cpu",
    ) -> None:
        from drum.feedback.scorer import FeedbackConfig
        from drum.lvlm.hf import HFLVLM
        from drum.tasks.spec import world_tasks
        from drum.train.config import MiningConfig, RetrieverTrainConfig
        from drum.train.mining import mine

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
            _fail(str(error))
        try:
            summary = mine(tasks, HFLVLM(lvlm, device=device), embedder, out, config)
        except ValueError as error:
            _fail(str(error))
        for record in summary["rounds"]:
            console.print(f"round {record['round']}: {json.dumps(record['validation'])}")
        console.print(f"DRUM embedder: {summary['final_embedder']}")

    command.__doc__ = doc
    return command


app.command("mine")(
    _mining_command(
        3, "Iterative demonstration mining: train the DRUM retriever on LVLM feedback (resumes)."
    )
)
app.command("train")(
    _mining_command(
        1, "Train the DRUM retriever on LVLM feedback: ``drum mine`` with one round by default."
    )
)


@app.command("experiments")
def experiments_command(
    out: Annotated[Path, typer.Option(help="Run directory.")] = Path("runs/experiments"),
    demo: Annotated[
        Path, typer.Option(help="A finished demo run (its world and models are reused).")
    ] = Path("runs/demo"),
    rounds: int = 3,
    train_seeds: Annotated[str, typer.Option(help="Comma-separated DRUM training seeds.")] = (
        "0,1,2"
    ),
    max_queries: Annotated[
        int | None, typer.Option(help="Test queries per task (default: all).")
    ] = None,
) -> None:
    """DRUM vs the similarity strategies with ablations: the full table (resumable)."""
    from drum.builtin.assets import ensure_builtin_models
    from drum.builtin.world.generate import WorldConfig
    from drum.pipelines.demo import DEMO_LVLM
    from drum.pipelines.drum_experiments import DrumExperimentConfig, run_drum_experiments
    from drum.train.config import MiningConfig
    from drum.train.mining import rounds_table

    world = demo / "world"
    if not (world / "world.json").is_file():
        _fail(f"{demo} holds no demo world: run `make demo` (or `drum demo --out {demo}`) first")
    # The demo's models: the shipped ones when they match its world, else those it trained.
    models = ensure_builtin_models(world, demo / "models", WorldConfig(), lvlm_config=DEMO_LVLM)
    config = DrumExperimentConfig(
        mining=MiningConfig(rounds=rounds),
        train_seeds=_csv_ints(train_seeds, "--train-seeds"),
        max_queries=max_queries,
    )
    results = run_drum_experiments(world, models["embedder"], models["lvlm"], out, config)
    from drum.eval.report import markdown_table

    typer.echo(markdown_table(results))
    typer.echo(rounds_table(results["mining"]))
    console.print(f"results: {out}/drum_results.json (+ .md, .png)")


@app.command("demo")
def demo_command(
    out: Annotated[
        Path, typer.Option(help="Run directory (world, models, cache, results).")
    ] = Path("runs/demo"),
    quick: Annotated[
        bool, typer.Option(help="A small world and short training (smoke run).")
    ] = False,
    assets: Annotated[
        bool, typer.Option(help="Use the shipped built-in models when they match the world.")
    ] = True,
) -> None:
    """The main job on the built-in default: world -> models -> retrieval -> ICL evaluation."""
    from drum.pipelines.demo import run_demo

    run_demo(out, quick=quick, use_assets=assets)


def main() -> None:  # pragma: no cover - console script
    app()


if __name__ == "__main__":  # pragma: no cover
    app()

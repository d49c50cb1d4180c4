"""``drum index``: build FAISS indexes over a pool's vectors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from drum.cli.common import (
    JointInstructionOption,
    ModelOption,
    check_joint_instruction,
    check_model,
    check_out,
    console,
    fail,
    load_embedder,
    read_dataset,
)
from drum.cli.defaults import default_of

RETRIEVAL_CONFIG = "drum.retrieve.strategies:RetrievalConfig"
INDEX_CONFIG = "drum.index:IndexConfig"

app = typer.Typer(no_args_is_help=True, help="Build and query FAISS indexes.")


@app.command("build")
def index_build_command(
    pool: Annotated[Path, typer.Option(help="JSONL pool.")],
    model: ModelOption,
    out: Annotated[Path, typer.Option(help="Directory to save the index in.")],
    strategy: str = default_of(RETRIEVAL_CONFIG, "strategy"),
    image_weight: float = default_of(RETRIEVAL_CONFIG, "image_weight"),
    factory: Annotated[str, typer.Option(help="FAISS index_factory string.")] = default_of(
        INDEX_CONFIG, "factory"
    ),
    cache: Path = Path("runs/cache"),
    joint_instruction: JointInstructionOption = "",
) -> None:
    """Build and save a FAISS index over a pool's vectors for one strategy."""
    import numpy as np

    from drum.embed.cache import EmbeddingCache
    from drum.embed.example_embeddings import ExampleEmbeddings
    from drum.index.faiss_index import IndexConfig, VectorIndex, check_factory
    from drum.retrieve.strategies import RetrievalConfig, pool_vectors

    # Cheap checks first (options, output, data, model argument), then the model, then the
    # factory on the real dimension, and only then the slow embedding.
    try:
        config = RetrievalConfig(strategy=strategy, image_weight=image_weight)
    except ValueError as error:
        fail(f"--strategy / --image-weight: {error}")
    if not config.uses_similarity:
        fail(f"strategy {strategy!r} does not use an index; use a similarity strategy")
    check_joint_instruction(joint_instruction, "joint" in config.spec.parts, strategy)
    try:
        index_config = IndexConfig(factory=factory)
    except ValueError as error:
        fail(f"--factory: {error}")
    check_out(out, "directory")
    check_out(cache, "directory", "--cache")
    examples = read_dataset(pool, pool=True)
    check_model(model, "--model")
    parts = config.spec.parts
    embedder = load_embedder(model, joint="joint" in parts, instruction=joint_instruction)
    empty = np.zeros((1, embedder.dim), dtype=np.float32)
    dim = pool_vectors(config, empty, empty, empty).shape[1]
    try:
        check_factory(dim, index_config, n_vectors=len(examples))
    except ValueError as error:
        fail(f"--factory: {error}")
    embeddings = ExampleEmbeddings.compute(examples, embedder, EmbeddingCache(cache), True, parts)
    vectors = pool_vectors(config, embeddings.image, embeddings.text, embeddings.joint)
    index = VectorIndex(dim, index_config)
    try:
        index.add(vectors, [e.id for e in examples])
    except ValueError as error:
        fail(f"--factory: {error}")
    index.save(
        out,
        meta={
            "pool": str(pool.resolve()),
            "embedder": embedder.fingerprint,
            "strategy": strategy,
            "image_weight": image_weight,
        },
    )
    console.print(f"index of {len(examples)} vectors (dim {dim}) saved to {out}")

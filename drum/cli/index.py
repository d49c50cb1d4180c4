"""``drum index``: build FAISS indexes over a pool's vectors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from drum.cli.common import ModelOption, console, default_of, fail

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
        fail(f"strategy {strategy!r} does not use an index")
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

"""``drum retrieve`` and ``drum strategies``: choose demonstrations per query."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from drum.cli.common import (
    JointInstructionOption,
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


def retrieve_command(
    pool: Annotated[Path, typer.Option(help="JSONL pool of demonstrations.")],
    queries: Annotated[Path, typer.Option(help="JSONL queries.")],
    out: Annotated[Path, typer.Option(help="Output JSONL: per query, demo ids and scores.")],
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="Embedder (similarity strategies): a dual encoder, or for strategy 'joint' "
            "an LVLM read as a joint image+text embedder.",
        ),
    ] = None,
    strategy: str = default_of(RETRIEVAL_CONFIG, "strategy"),
    k: int = default_of(RETRIEVAL_CONFIG, "k"),
    order: str = default_of(RETRIEVAL_CONFIG, "order"),
    image_weight: float = default_of(RETRIEVAL_CONFIG, "image_weight"),
    seed: int = default_of(RETRIEVAL_CONFIG, "seed"),
    cache: Path = Path("runs/cache"),
    joint_instruction: JointInstructionOption = "",
) -> None:
    """Choose k demonstrations per query and write them as JSONL (in prompt order)."""
    from drum.embed.cache import EmbeddingCache
    from drum.embed.example_embeddings import ExampleEmbeddings
    from drum.retrieve.retriever import DemonstrationRetriever, PoolExclusions, check_available
    from drum.retrieve.strategies import RetrievalConfig
    from drum.utils.io import atomic_open

    # Every cheap check (options, output, both files, k against the pool, the model argument)
    # before the model loads and the pool is embedded.
    try:
        config = RetrievalConfig(
            strategy=strategy, k=k, order=order, image_weight=image_weight, seed=seed
        )
    except ValueError as error:
        fail(str(error))
    if config.uses_similarity and model is None:
        fail(f"strategy {strategy!r} needs --model")
    check_joint_instruction(joint_instruction, "joint" in config.spec.parts, strategy)
    check_out(out, "file")
    pool_examples, query_examples = read_dataset(pool, pool=True), read_dataset(queries)
    if config.k > len(pool_examples):
        fail(f"--k {config.k} exceeds the {len(pool_examples)} examples of the pool {pool}")
    exclusions = PoolExclusions(pool_examples)  # hashed once, handed to the retriever
    if config.exclude_self:  # k against what each query may see, as the retriever counts it
        try:
            excluded = [exclusions.rows(query) for query in query_examples]
            check_available(pool_examples, query_examples, excluded, config.k)
        except ValueError as error:
            fail(f"--k: {error}")
    pool_side: ExampleEmbeddings | list = pool_examples
    query_embeddings = None
    if config.uses_similarity:
        assert model is not None
        check_model(model, "--model")
        parts = config.spec.parts
        embedder = load_embedder(model, joint="joint" in parts, instruction=joint_instruction)
        store = EmbeddingCache(cache)
        pool_side = ExampleEmbeddings.compute(pool_examples, embedder, store, True, parts)
        query_embeddings = ExampleEmbeddings.compute(query_examples, embedder, store, True, parts)
    retrievals = DemonstrationRetriever(pool_side, config, exclusions=exclusions).retrieve(
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


def strategies_command() -> None:
    """List the retrieval strategies."""
    from drum.retrieve.strategies import STRATEGIES

    for name in STRATEGIES:
        typer.echo(name)

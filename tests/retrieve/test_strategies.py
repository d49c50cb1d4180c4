"""Strategy specs: the built-in registry, validation, and specs used by name or as data."""

from __future__ import annotations

import numpy as np
import pytest

from drum.data.example import Example
from drum.embed.base import l2_normalize
from drum.embed.example_embeddings import ExampleEmbeddings
from drum.registry import Registry
from drum.retrieve import strategies
from drum.retrieve.retriever import DemonstrationRetriever
from drum.retrieve.strategies import (
    STRATEGIES,
    RetrievalConfig,
    StrategySpec,
    get_strategy,
    register_strategy,
)

N, D = 30, 6


@pytest.fixture(scope="module")
def pool() -> ExampleEmbeddings:
    rng = np.random.default_rng(0)
    examples = [Example(f"p{i}", (), f"question {i}", ("a",), "vqa") for i in range(N)]
    return ExampleEmbeddings(
        examples, l2_normalize(rng.normal(size=(N, D))), l2_normalize(rng.normal(size=(N, D)))
    )


def _ids(pool: ExampleEmbeddings, config: RetrievalConfig) -> list[tuple[str, ...]]:
    queries = ExampleEmbeddings(pool.examples[:5], pool.image[:5], pool.text[:5])
    retriever = DemonstrationRetriever(pool, config)
    return [r.demo_ids for r in retriever.retrieve(queries.examples, queries)]


def test_builtins_are_registered_by_name() -> None:
    assert STRATEGIES == (
        "random", "fixed", "image", "text", "cross", "concat", "drum", "joint"
    )  # fmt: skip
    for name in STRATEGIES[:-2]:
        assert get_strategy(name) == StrategySpec(name, name)
    # drum: concat over the embedder named "drum".
    assert get_strategy("drum") == StrategySpec("drum", "concat", embedder="drum")
    # joint: the joint embeddings of the embedder named "joint".
    assert get_strategy("joint") == StrategySpec("joint", "joint", embedder="joint")
    spec = StrategySpec("mine", "image", embedder="lora")
    assert get_strategy(spec) is spec
    with pytest.raises(ValueError, match="unknown strategy 'nearest'"):
        get_strategy("nearest")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "", "combine": "image"}, "needs a name"),
        ({"name": "x", "combine": "nearest"}, "unknown combine"),
        ({"name": "x", "combine": "image", "embedder": ""}, "embedder name"),
        ({"name": "x", "combine": "concat", "image_weight": 1.5}, "image_weight"),
        ({"name": "x", "combine": "random", "train_seed": 0}, "train_seed"),
    ],
)
def test_spec_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StrategySpec(**kwargs)


def test_register_refuses_a_second_spec_under_a_name(monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = Registry("strategy")  # the built-ins, without what this test registers
    for name in strategies.STRATEGY_REGISTRY.names():
        fresh.register(name, strategies.STRATEGY_REGISTRY.get(name))
    monkeypatch.setattr(strategies, "STRATEGY_REGISTRY", fresh)
    spec = StrategySpec("lora-siglip", "concat", embedder="lora")
    assert register_strategy(spec) is spec
    register_strategy(StrategySpec("lora-siglip", "concat", embedder="lora"))  # the same: fine
    assert RetrievalConfig(strategy="lora-siglip").spec == spec
    with pytest.raises(ValueError, match="already registered"):
        register_strategy(StrategySpec("lora-siglip", "image", embedder="lora"))
    with pytest.raises(ValueError, match="already registered"):
        register_strategy(StrategySpec("concat", "concat", embedder="other"))


def test_a_spec_retrieves_as_its_combination_does(pool: ExampleEmbeddings) -> None:
    for combine in ("image", "text", "cross", "concat", "fixed"):
        by_name = _ids(pool, RetrievalConfig(combine, k=4))
        spec = StrategySpec(f"my-{combine}", combine, embedder="other")
        assert _ids(pool, RetrievalConfig(spec, k=4)) == by_name
    # The embedder a spec names does not enter the vectors: drum retrieves as concat.
    assert _ids(pool, RetrievalConfig("drum", k=4)) == _ids(pool, RetrievalConfig("concat", k=4))


def test_a_specs_image_weight_replaces_the_configs(pool: ExampleEmbeddings) -> None:
    spec = StrategySpec("image only", "concat", image_weight=1.0)
    config = RetrievalConfig(spec, k=4, image_weight=0.5)
    assert config.image_weight == 1.0
    assert _ids(pool, config) == _ids(pool, RetrievalConfig("concat", k=4, image_weight=1.0))
    assert _ids(pool, config) != _ids(pool, RetrievalConfig("concat", k=4, image_weight=0.5))
    assert RetrievalConfig(StrategySpec("c", "concat"), image_weight=0.3).image_weight == 0.3

"""Demonstration retrieval: strategies by name over a pool, a sampler API, quality figures."""

from drum.retrieve.retriever import DemonstrationRetriever, Retrieval
from drum.retrieve.strategies import (
    STRATEGIES,
    RetrievalConfig,
    StrategySpec,
    get_strategy,
    register_strategy,
)

__all__ = [
    "STRATEGIES",
    "DemonstrationRetriever",
    "Retrieval",
    "RetrievalConfig",
    "StrategySpec",
    "get_strategy",
    "register_strategy",
]

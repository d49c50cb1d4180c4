"""Demonstration retrieval: strategies by name over a pool, a sampler API, quality figures."""

from drum.retrieve.retriever import DemonstrationRetriever, PoolEmbeddings, Retrieval
from drum.retrieve.strategies import STRATEGIES, RetrievalConfig

__all__ = [
    "STRATEGIES",
    "DemonstrationRetriever",
    "PoolEmbeddings",
    "Retrieval",
    "RetrievalConfig",
]

"""Demonstration retrieval: strategies by name over a pool, a sampler API, quality figures.

The names below load lazily (PEP 562): importing the package imports none of its modules.
``drum.retrieve.strategies`` imports no FAISS; ``drum.retrieve.retriever`` does.
"""

from drum.utils.lazy import lazy_exports

__all__ = [
    "DemonstrationRetriever",
    "Retrieval",
    "RetrievalConfig",
    "STRATEGIES",
    "STRATEGY_REGISTRY",
    "StrategySpec",
    "get_strategy",
    "register_strategy",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "DemonstrationRetriever": "drum.retrieve.retriever",
        "Retrieval": "drum.retrieve.retriever",
        "STRATEGIES": "drum.retrieve.strategies",
        "STRATEGY_REGISTRY": "drum.retrieve.strategies",
        "RetrievalConfig": "drum.retrieve.strategies",
        "StrategySpec": "drum.retrieve.strategies",
        "get_strategy": "drum.retrieve.strategies",
        "register_strategy": "drum.retrieve.strategies",
    },
)

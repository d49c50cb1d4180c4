"""DRUM: demonstration retrieval for in-context learning with vision-language models.

The names a user needs are importable from the top level, lazily (``import drum`` imports
neither torch nor transformers nor faiss; each name loads its module on first use)::

    import drum

    embedder = drum.HFDualEncoder("openai/clip-vit-base-patch32")
    pool = drum.ExampleEmbeddings.compute(drum.read_examples("world/vqa/pool.jsonl"), embedder)
    retriever = drum.DemonstrationRetriever(pool, drum.RetrievalConfig(), embedder=embedder)

Each name's docstring has an ``Example:`` block; ``docs/architecture.md`` maps the packages.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> module that defines it. One place, so the public surface is reviewable at a glance.
_PUBLIC: dict[str, str] = {
    "Example": "drum.data.example",
    "read_examples": "drum.data.jsonl",
    "write_examples": "drum.data.jsonl",
    "HFDualEncoder": "drum.embed.hf",
    "LVLMEmbedder": "drum.embed.joint",
    "EmbeddingCache": "drum.embed.cache",
    "RetrievalConfig": "drum.retrieve.strategies",
    "ExampleEmbeddings": "drum.embed.example_embeddings",
    "DemonstrationRetriever": "drum.retrieve.retriever",
    "HFLVLM": "drum.lvlm.hf",
    "ServedLVLM": "drum.lvlm.served.model",
    "build_prompt": "drum.lvlm.prompt",
    "TaskSpec": "drum.tasks.spec",
    "ICLEvalConfig": "drum.eval.icl_config",
    "run_icl_eval": "drum.eval.icl",
    "MiningConfig": "drum.finetune.config",
    "mine": "drum.finetune.mining",
}

__all__ = [
    "__version__",
    "Example",
    "read_examples",
    "write_examples",
    "HFDualEncoder",
    "LVLMEmbedder",
    "EmbeddingCache",
    "RetrievalConfig",
    "ExampleEmbeddings",
    "DemonstrationRetriever",
    "HFLVLM",
    "ServedLVLM",
    "build_prompt",
    "TaskSpec",
    "ICLEvalConfig",
    "run_icl_eval",
    "MiningConfig",
    "mine",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from drum.data.example import Example
    from drum.data.jsonl import read_examples, write_examples
    from drum.embed.cache import EmbeddingCache
    from drum.embed.example_embeddings import ExampleEmbeddings
    from drum.embed.hf import HFDualEncoder
    from drum.embed.joint import LVLMEmbedder
    from drum.eval.icl import run_icl_eval
    from drum.eval.icl_config import ICLEvalConfig
    from drum.finetune.config import MiningConfig
    from drum.finetune.mining import mine
    from drum.lvlm.hf import HFLVLM
    from drum.lvlm.prompt import build_prompt
    from drum.lvlm.served.model import ServedLVLM
    from drum.retrieve.retriever import DemonstrationRetriever
    from drum.retrieve.strategies import RetrievalConfig
    from drum.tasks.spec import TaskSpec


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'drum' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

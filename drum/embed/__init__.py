"""Vision-language embedders: one interface, a Hugging Face backend, a disk cache."""

from drum.embed.base import Embedder, l2_normalize

__all__ = ["Embedder", "l2_normalize"]

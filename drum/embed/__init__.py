"""Vision-language embedders: one interface (and its joint image+text extension), Hugging Face
backends (dual encoders in ``hf``, any LVLM as a joint embedder in ``joint``), a disk cache."""

from drum.embed.base import Embedder, JointEmbedder, l2_normalize

__all__ = ["Embedder", "JointEmbedder", "l2_normalize"]

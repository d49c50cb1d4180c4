"""Vision-language embedders: one interface, a Hugging Face backend, a disk cache."""

from drum.embed.base import Embedder, ImageInput, l2_normalize, load_image

__all__ = ["Embedder", "ImageInput", "l2_normalize", "load_image"]

"""Image I/O shared by every stage: load an image as RGB, and key it by its content."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from PIL import Image

ImageInput = str | os.PathLike[str] | Image.Image


def load_image(image: ImageInput) -> Image.Image:
    """An RGB PIL image from a path or an image (grayscale / RGBA are converted)."""
    if isinstance(image, Image.Image):
        return image.convert("RGB") if image.mode != "RGB" else image
    with Image.open(Path(image)) as opened:
        return opened.convert("RGB")


def image_key(image: ImageInput) -> str:
    """SHA-1 of the image file's bytes (or of the pixels for an in-memory image): the key under
    which embeddings and LVLM image features are cached, so identical content is shared."""
    if isinstance(image, str | os.PathLike):
        return hashlib.sha1(Path(image).read_bytes()).hexdigest()
    return hashlib.sha1(image.tobytes() + repr((image.size, image.mode)).encode()).hexdigest()

"""Image I/O shared by every stage: open an image within the pixel limit, load it as RGB, and key
it by its content.

Every image DRUM reads goes through ``open_image`` (``drum data check`` and every command's data
check, the importers' checks, embedding, LVLM image loading): one that decodes to more than
``MAX_IMAGE_PIXELS`` pixels raises ``ImageTooLarge`` as soon as its header is read, before any
pixel is decoded; that covers decompression bombs (a 12000 x 12000 PNG of one colour is a few
KB on disk), which PIL itself only warns about below twice its own limit.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from PIL import Image

ImageInput = str | os.PathLike[str] | Image.Image

# 8192 x 8192 = 67,108,864 pixels (192 MiB as 8-bit RGB). Above the largest photos of the data
# sets DRUM imports (COCO's are at most 640 px a side, VizWiz phone photos about 12 Mpx) and of
# today's 48-50 Mpx cameras (8688 x 5792), below PIL's own warning limit (89,478,485): every
# embedder and LVLM shrinks an image to a few hundred pixels a side, so more only costs memory
# (a 12000 x 12000 image took `embed run` from 0.44 GB to 2.4 GB).
MAX_IMAGE_PIXELS = 8192 * 8192


class ImageTooLarge(ValueError):
    """An image with more pixels than ``MAX_IMAGE_PIXELS`` (not corrupt: too large to use)."""


def _too_large(name: object, size: str) -> ImageTooLarge:
    return ImageTooLarge(
        f"image too large: {name}: {size} is over the limit of {MAX_IMAGE_PIXELS} pixels "
        "(8192 x 8192, drum.data.images.MAX_IMAGE_PIXELS)"
    )


@contextlib.contextmanager
def open_image(image: str | os.PathLike[str] | IO[bytes]) -> Iterator[Image.Image]:
    """``Image.open(image)`` with its size checked against ``MAX_IMAGE_PIXELS`` (header only).

    PIL's own decompression-bomb check runs inside ``Image.open``: above its error limit it
    raises ``DecompressionBombError``, above its warning limit it warns; both mean an image over
    ``MAX_IMAGE_PIXELS`` (which is lower), so both become ``ImageTooLarge`` here.
    """
    name = image if isinstance(image, str | os.PathLike) else "<bytes>"
    # catch_warnings is process-wide state: fine, DRUM reads images from one thread at a time.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            opened = Image.open(image)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            # PIL's message: "Image size (400000000 pixels) exceeds limit of ...".
            size = str(error).partition("(")[2].partition(")")[0] or "its size"
            raise _too_large(name, size) from None
    with opened:
        width, height = opened.size
        if width * height > MAX_IMAGE_PIXELS:
            raise _too_large(name, f"{width} x {height} = {width * height} pixels")
        yield opened


def decode_image(image: str | os.PathLike[str] | IO[bytes]) -> None:
    """Decode ``image`` in full: ``ImageTooLarge`` over the limit, else PIL's error (``OSError``,
    ``SyntaxError`` or ``ValueError``) if it is unreadable or corrupt.

    A full decode, not PIL's ``verify()``: that checks a PNG's chunk CRCs only, so a broken
    compressed stream under a valid CRC passes it and fails later, mid-run.
    """
    with open_image(image) as opened:
        opened.load()


def load_image(image: ImageInput) -> Image.Image:
    """An RGB PIL image from a path or an image (grayscale / RGBA are converted).

    A path over ``MAX_IMAGE_PIXELS`` raises ``ImageTooLarge``; an image already in memory is
    the caller's and is taken as it is.
    """
    if isinstance(image, Image.Image):
        return image.convert("RGB") if image.mode != "RGB" else image
    with open_image(Path(image)) as opened:
        return opened.convert("RGB")


def image_key(image: ImageInput) -> str:
    """SHA-1 of the image file's bytes (or of the pixels for an in-memory image): the key under
    which embeddings and LVLM image features are cached, so identical content is shared."""
    if isinstance(image, str | os.PathLike):
        return hashlib.sha1(Path(image).read_bytes()).hexdigest()
    return hashlib.sha1(image.tobytes() + repr((image.size, image.mode)).encode()).hexdigest()

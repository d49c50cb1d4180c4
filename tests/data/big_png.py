"""PNGs that decode large but are small on disk (decompression-bomb sized), written without
ever holding their pixels: 1-bit grayscale rows of zeros, compressed as a stream."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def write_big_png(path: Path, width: int, height: int) -> Path:
    """A black ``width`` x ``height`` PNG at ``path`` (a few KB for 12000 x 12000)."""
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte "none", then 1 bit per pixel
    compressor = zlib.compressobj(9)
    parts = [compressor.compress(row * 1000) for _ in range(height // 1000)]
    parts += [compressor.compress(row * (height % 1000)), compressor.flush()]
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit grayscale
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", b"".join(parts))
        + _chunk(b"IEND", b"")
    )
    return path

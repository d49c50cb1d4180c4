"""Content fingerprints of saved models: caches key on them."""

from __future__ import annotations

import hashlib
from pathlib import Path

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".json", ".jinja")


def directory_digest(model_dir: Path) -> str:
    """SHA-256 over a model directory's config, processor and weight files (sorted by name)."""
    digest = hashlib.sha256()
    files = sorted(
        p for p in Path(model_dir).iterdir() if p.suffix in WEIGHT_SUFFIXES and p.is_file()
    )
    for path in files:
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()

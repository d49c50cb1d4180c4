"""An LRU cache of a model's image encodings (LLaVA, Gemma 3), keyed by image content.

Feedback scoring and evaluation show the same images in many prompts (a query's image in
every one of its candidates' prompts, a pool image in every query it is a candidate for).
Their post-projector encodings depend on the pixels alone, so each distinct image is loaded,
preprocessed and sent through the vision tower and projector once, then reused for as long as
it stays among the ``capacity`` most recently used. Keys are ``drum.data.images.image_key``
(the file's SHA-1), memoised per path by ``(size, mtime_ns)`` so that a file is hashed again
only when it changed.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from drum.data.images import image_key, load_image

# Image paths whose content keys are remembered (cleared when full).
PATH_KEYS_LIMIT = 1 << 16


class ImageFeatureCache:
    """Encodings of ``model`` (``model.model.get_image_features``), at most ``capacity``.

    Args:
        model: a ``...ForConditionalGeneration`` whose ``model.get_image_features`` encodes
            ``pixel_values`` of one row per image (LLaVA, Gemma 3 without pan-and-scan).
        image_processor: the processor's image processor (what makes ``pixel_values``).
        device: where the pixel values go.
        capacity: distinct images kept; 0 keeps none (every call encodes its images).
    """

    def __init__(
        self, model: Any, image_processor: Any, device: torch.device, capacity: int
    ) -> None:
        if capacity < 0:
            raise ValueError(f"image feature cache capacity must be >= 0, got {capacity}")
        self.model = model
        self.image_processor = image_processor
        self.device = device
        self.capacity = capacity
        self._encodings: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._path_keys: dict[Path, tuple[tuple[int, int], str]] = {}

    def __len__(self) -> int:
        return len(self._encodings)

    def clear(self) -> None:
        """Forget every encoding (the path-key memo stays: it follows the files)."""
        self._encodings.clear()

    def keys(self, paths: Sequence[Path]) -> list[str]:
        """``image_key`` of each path, memoised by ``(path, size, mtime_ns)``: hashing the file
        again is only needed when it changed (a rewrite shows in its size or mtime)."""
        keys = []
        for path in paths:
            stat = path.stat()
            stamp = (stat.st_size, stat.st_mtime_ns)
            known = self._path_keys.get(path)
            if known is None or known[0] != stamp:
                if len(self._path_keys) >= PATH_KEYS_LIMIT:
                    self._path_keys.clear()
                known = (stamp, image_key(path))
                self._path_keys[path] = known
            keys.append(known[1])
        return keys

    def pixel_values(self, paths: Sequence[Path]) -> torch.Tensor:
        """``pixel_values`` of ``paths`` as ``LlavaProcessor`` makes them: its image
        processor's, with no text to tokenise alongside."""
        images = [load_image(path) for path in paths]
        return self.image_processor(images, return_tensors="pt")["pixel_values"]

    def features(
        self, paths: Sequence[Path], pixels: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """The post-projector encoding of every image in ``paths`` (one tensor each), from the
        cache where present; the others are encoded once each (one vision-tower call) and
        cached. ``pixels``: the images' ``pixel_values`` when already computed (row ``i`` is
        ``paths[i]``), else only the missing images are loaded and preprocessed."""
        keys = self.keys(paths)
        # This call's features are gathered here, not read back from the cache afterwards:
        # inserting new encodings may evict entries this very call needs (more distinct images
        # than the cache holds, or hits that were the least recently used).
        found: dict[str, torch.Tensor] = {}
        missing: dict[str, int] = {}
        for index, key in enumerate(keys):
            if key in self._encodings:
                self._encodings.move_to_end(key)
                found[key] = self._encodings[key]
            elif key not in missing:
                missing[key] = index
        if missing:
            rows = list(missing.values())
            new_pixels = (
                self.pixel_values([paths[i] for i in rows]) if pixels is None else pixels[rows]
            )
            with torch.inference_mode():
                encoded = self.model.model.get_image_features(
                    pixel_values=new_pixels.to(self.device, self.model.dtype)
                ).pooler_output
            for key, feature in zip(missing, encoded, strict=True):
                found[key] = feature
                self._encodings[key] = feature
            while len(self._encodings) > self.capacity:
                self._encodings.popitem(last=False)
        return [found[key] for key in keys]

"""An LRU cache of a model's image encodings (LLaVA, Gemma 3, Qwen2-VL, Qwen2.5-VL, Qwen3-VL),
keyed by image content.

Feedback scoring and evaluation show the same images in many prompts (a query's image in
every one of its candidates' prompts, a pool image in every query it is a candidate for).
Their post-projector encodings depend on the pixels alone, so each distinct image is loaded,
preprocessed and sent through the vision tower and projector once, then reused for as long as
it stays among the ``capacity`` most recently used and within ``max_bytes`` (default 2 GiB:
a 7B model's image is megabytes, so the image count alone could fill a GPU). Keys are
``drum.data.images.image_key`` (the file's SHA-1), memoised per path by ``(size, mtime_ns)``
so that a file is hashed again only when it changed.

What else an encoding depends on is fixed per cache: the model (its weights and dtype) and
the processor's image settings (Qwen's ``min_pixels`` / ``max_pixels``, which set an image's
patch grid), both those of the one ``HFLVLM`` that owns the cache; so the content key is the
whole key. A cache must not be shared across models or processors, and whoever changes the
processor's image settings in place must ``clear()`` it.

How a family's processor lays out a batch's pixel inputs, and so how the cache cuts them per
image and encodes the images it lacks, is a ``PixelLayout`` (``LAYOUTS``, named by the family
record's ``feature_cache``):

* ``"rows"`` (LLaVA, Gemma 3 without pan-and-scan): ``pixel_values`` is one row per image;
  ``get_image_features(pixel_values)``;
* ``"grid"`` (Qwen2-VL, Qwen2.5-VL): ``pixel_values`` is every image's patches back to back,
  image ``i`` owning ``prod(image_grid_thw[i])`` rows;
  ``get_image_features(pixel_values, image_grid_thw)``, one pooled tensor per image of
  ``prod / merge_size**2`` tokens. The vision tower attends within each image alone
  (``cu_seqlens``; Qwen2.5-VL's windows lie inside an image), so an image's encoding does not
  depend on its batch-mates (``tests/lvlm/test_qwen_feature_cache.py`` measures it: equal to
  the bit on the tiny models). The forward still needs ``image_grid_thw`` beside the
  encodings, for its M-RoPE positions.
* ``"grid_deepstack"`` (Qwen3-VL): pixels cut as ``"grid"``; an image's encoding is a
  ``DeepstackEncoding``: its pooled tokens and, per deepstack layer, the features the decoder
  adds at its visual positions after that layer (``get_image_features``' ``deepstack_features``,
  cut per image as its pooled output is). One cache entry holds both, so an image is counted,
  kept and evicted whole. Its vision tower too attends within each image (``cu_seqlens``) and
  resamples its position embeddings per image grid (tested as for ``"grid"``). ``capacity``
  counts images, not bytes: an entry is ``1 + len(deepstack_visual_indexes)`` tensors of its
  tokens' width (4 with the config's default of 3 deepstack layers), so on a device short of
  memory a smaller ``image_feature_cache_size`` keeps the same bytes as a Qwen2-VL cache.

An encoding (``Encoding``) is a ``(tokens, width)`` tensor or a ``DeepstackEncoding``;
``len(encoding)`` is its token count either way. ``drum.lvlm.encoding.encoder_outputs`` turns a
list of them into the forward's ``mm_encoder_outputs``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from drum.data.images import image_key, load_image

# Image paths whose content keys are remembered (cleared when full).
PATH_KEYS_LIMIT = 1 << 16

# One image's pixel inputs, as the layout cuts them from a batch's (keys of the processor's).
ImagePixels = dict[str, torch.Tensor]


@dataclass(frozen=True, eq=False)
class DeepstackEncoding:
    """One Qwen3-VL image's encoding: ``pooled`` ``(tokens, width)``, what its visual tokens'
    embeddings become, and ``deepstack``, one ``(tokens, width)`` tensor per deepstack layer,
    added to the hidden states at its visual positions after that decoder layer."""

    pooled: torch.Tensor
    deepstack: tuple[torch.Tensor, ...]

    def __len__(self) -> int:
        return int(self.pooled.shape[0])


# One image's encoding: a ``(tokens, width)`` tensor, or one with its deepstack features.
Encoding = torch.Tensor | DeepstackEncoding

# The cache's default memory budget. An image's encoding is tokens x width x bytes: a
# few KB on the built-in LVLM, ~4.7 MB for LLaVA-1.5-7B in bf16 (576 x 4,096), ~4x a Qwen2-VL
# image's for Qwen3-VL (its deepstack layers): 4,096 images of a 7B model would not fit beside
# it on most GPUs, so the bytes bound the cache as well as the image count.
DEFAULT_MAX_BYTES = 2 << 30


def encoding_bytes(encoding: Encoding) -> int:
    """The memory an encoding holds: ``sum(numel x element size)`` over its tensors."""
    tensors = (
        (encoding.pooled, *encoding.deepstack)
        if isinstance(encoding, DeepstackEncoding)
        else (encoding,)
    )
    return sum(tensor.numel() * tensor.element_size() for tensor in tensors)


@dataclass(frozen=True)
class PixelLayout:
    """How a family's pixel inputs are laid out per image (module docstring).

    Attributes:
        name: the family record's ``feature_cache`` value.
        grid: ``pixel_values`` rows are patches, ``image_grid_thw`` says how many each image
            owns (else one row per image).
        deepstack: each image's encoding carries its deepstack features
            (``DeepstackEncoding``), else it is the pooled tensor alone.
    """

    name: str
    grid: bool
    deepstack: bool = False

    def split(self, vision: dict[str, Any], count: int) -> list[ImagePixels] | None:
        """Each of ``count`` images' pixel inputs cut from the batch's ``vision``, or None where
        they are not laid out as this layout expects (Gemma 3's pan-and-scan crops: more rows
        than images)."""
        pixels = vision.get("pixel_values")
        if pixels is None:
            return None
        if not self.grid:
            if len(pixels) != count:
                return None
            return [{"pixel_values": pixels[i : i + 1]} for i in range(count)]
        grids = vision.get("image_grid_thw")
        if grids is None or len(grids) != count:
            return None
        rows = [int(grid.prod()) for grid in grids]
        if sum(rows) != len(pixels):
            return None
        parts, start = [], 0
        for index, size in enumerate(rows):
            parts.append(
                {
                    "pixel_values": pixels[start : start + size],
                    "image_grid_thw": grids[index : index + 1],
                }
            )
            start += size
        return parts

    def encode(
        self, model: Any, images: Sequence[ImagePixels], device: torch.device
    ) -> list[Encoding]:
        """The post-projector encodings of ``images`` (one each: ``(tokens, width)``, or a
        ``DeepstackEncoding``) in one vision-tower call of ``model`` (a
        ``...ForConditionalGeneration``)."""
        pixels = torch.cat([image["pixel_values"] for image in images])
        kwargs = {"pixel_values": pixels.to(device, model.dtype)}
        if self.grid:
            grids = torch.cat([image["image_grid_thw"] for image in images])
            kwargs["image_grid_thw"] = grids.to(device)
        output = model.model.get_image_features(**kwargs)
        if not self.deepstack:
            return list(output.pooler_output)
        # deepstack_features: per layer, one tensor per image (cut as pooler_output is).
        layers = output.deepstack_features
        return [
            DeepstackEncoding(pooled, tuple(layer[index] for layer in layers))
            for index, pooled in enumerate(output.pooler_output)
        ]


LAYOUTS = {
    layout.name: layout
    for layout in (
        PixelLayout("rows", False),
        PixelLayout("grid", True),
        PixelLayout("grid_deepstack", True, deepstack=True),
    )
}


class ImageFeatureCache:
    """Encodings of ``model`` (``model.model.get_image_features``), at most ``capacity``.

    Args:
        model: a ``...ForConditionalGeneration`` whose ``model.get_image_features`` encodes
            pixel inputs laid out as ``layout`` says.
        image_processor: the processor's image processor (what makes ``pixel_values``).
        device: where the pixel values go.
        capacity: distinct images kept; 0 keeps none (every call encodes its images).
        layout: a ``LAYOUTS`` name (module docstring).
        max_bytes: the most memory the kept encodings may hold (``encoding_bytes``); the least
            recently used go first when either bound is passed. ``None``: no byte bound.
    """

    def __init__(
        self,
        model: Any,
        image_processor: Any,
        device: torch.device,
        capacity: int,
        layout: str = "rows",
        max_bytes: int | None = DEFAULT_MAX_BYTES,
    ) -> None:
        if capacity < 0:
            raise ValueError(f"image feature cache capacity must be >= 0, got {capacity}")
        if max_bytes is not None and max_bytes < 0:
            raise ValueError(f"image feature cache max_bytes must be >= 0, got {max_bytes}")
        if layout not in LAYOUTS:
            raise ValueError(
                f"image feature layout must be one of {sorted(LAYOUTS)}, got {layout!r}"
            )
        self.model = model
        self.image_processor = image_processor
        self.device = device
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.bytes = 0  # what the kept encodings hold now
        self.layout = LAYOUTS[layout]
        # One entry per image (a ``DeepstackEncoding`` keeps its layers together): ``capacity``
        # counts images, and evicting an image drops all of its tensors.
        self._encodings: OrderedDict[str, Encoding] = OrderedDict()
        self._path_keys: dict[Path, tuple[tuple[int, int], str]] = {}

    def __len__(self) -> int:
        return len(self._encodings)

    def clear(self) -> None:
        """Forget every encoding (the path-key memo stays: it follows the files)."""
        self._encodings.clear()
        self.bytes = 0

    def _over_budget(self) -> bool:
        return len(self._encodings) > self.capacity or (
            self.max_bytes is not None and self.bytes > self.max_bytes
        )

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

    def preprocess(self, paths: Sequence[Path]) -> dict[str, Any]:
        """The image processor's inputs for ``paths`` (``pixel_values`` and, for Qwen,
        ``image_grid_thw``), as the processor makes them with no text alongside."""
        images = [load_image(path) for path in paths]
        return dict(self.image_processor(images, return_tensors="pt"))

    def pixel_values(self, paths: Sequence[Path]) -> torch.Tensor:
        """``pixel_values`` of ``paths`` as ``LlavaProcessor`` makes them (``preprocess``)."""
        return self.preprocess(paths)["pixel_values"]

    def features(
        self, paths: Sequence[Path], pixels: Sequence[ImagePixels] | None = None
    ) -> list[Encoding]:
        """The post-projector encoding of every image in ``paths`` (one each), from the
        cache where present; the others are encoded once each (one vision-tower call) and
        cached. ``pixels``: each image's pixel inputs when already computed (``paths[i]``'s
        is ``pixels[i]``, as ``layout.split`` cuts them), else only the missing images are
        loaded and preprocessed."""
        keys = self.keys(paths)
        # This call's features are gathered here, not read back from the cache afterwards:
        # inserting new encodings may evict entries this very call needs (more distinct images
        # than the cache holds, or hits that were the least recently used).
        found: dict[str, Encoding] = {}
        missing: dict[str, int] = {}
        for index, key in enumerate(keys):
            if key in self._encodings:
                self._encodings.move_to_end(key)
                found[key] = self._encodings[key]
            elif key not in missing:
                missing[key] = index
        if missing:
            rows = list(missing.values())
            if pixels is None:
                new = self.layout.split(self.preprocess([paths[i] for i in rows]), len(rows))
                if new is None:
                    raise ValueError(
                        f"the image processor's pixel inputs are not laid out "
                        f"{self.layout.name!r} (one entry per image)"
                    )
            else:
                new = [pixels[i] for i in rows]
            with torch.inference_mode():
                encoded = self.layout.encode(self.model, new, self.device)
            for key, feature in zip(missing, encoded, strict=True):
                found[key] = feature
                self._encodings[key] = feature
                self.bytes += encoding_bytes(feature)
            while self._encodings and self._over_budget():
                _, evicted = self._encodings.popitem(last=False)
                self.bytes -= encoding_bytes(evicted)
        return [found[key] for key in keys]

"""Hugging Face ``transformers`` dual encoders (CLIP, SigLIP, SigLIP 2) by hub id or local path.

SigLIP 2 (``model_type`` ``siglip2``) keeps each image's aspect ratio: its image processor
returns patch sequences padded to ``max_num_patches`` with ``pixel_attention_mask`` and each
image's ``spatial_shapes`` (patch rows, columns), all of which its vision tower needs; its
texts are padded to the fixed length it was trained on, with their attention mask (as its
processor returns them), where SigLIP's text tower takes none.

The built-in embedder is itself a tiny ``CLIPModel`` saved with ``save_pretrained``, so the
demo runs exactly this code path, the one GPU users run with pretrained checkpoints.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from drum.data.images import ImageInput, load_image
from drum.embed.base import Embedder, l2_normalize
from drum.utils.fingerprint import directory_digest
from drum.utils.model_path import ModelPathError, check_model_path, model_load_error

SUPPORTED_MODEL_TYPES = ("clip", "siglip", "siglip2")
# What a dual encoder's vision tower reads of its image processor's output: SigLIP 2 adds which
# patches are padding and each image's patch grid to the pixel values.
VISION_INPUT_KEYS = ("pixel_values", "pixel_attention_mask", "spatial_shapes")


def vision_inputs(image_processor: Any, images: Sequence[Any]) -> dict[str, torch.Tensor]:
    """``image_processor``'s tensors for ``images`` (PIL) that ``get_image_features`` takes."""
    processed = image_processor(images=list(images), return_tensors="pt")
    return {key: processed[key] for key in VISION_INPUT_KEYS if key in processed}


def takes_text_mask(model_type: str) -> bool:
    """Whether the text tower reads an attention mask: SigLIP's was trained without one (on
    texts padded to a fixed length); SigLIP 2's processor passes one, CLIP's too."""
    return model_type != "siglip"


def _batches(items: Sequence, batch_size: int, desc: str, progress: bool) -> Iterator[Sequence]:
    starts = range(0, len(items), batch_size)
    for start in tqdm(starts, desc=desc, disable=not progress or len(starts) < 2, unit="batch"):
        yield items[start : start + batch_size]


def _features(output: object) -> torch.Tensor:
    # transformers >= 5 returns a ModelOutput whose pooler_output holds the projected features;
    # earlier versions return the tensor itself.
    if isinstance(output, torch.Tensor):
        return output
    return output.pooler_output  # type: ignore[attr-defined]


class HFDualEncoder(Embedder):
    """A ``transformers`` CLIP / SigLIP / SigLIP 2 model and its processor as an ``Embedder``.

    Args:
        model_name_or_path: a hub id (resolved from the local cache when offline) or a directory
            written by ``save_pretrained`` holding the model and its processor.
        device: torch device for inference.
        dtype: torch dtype of the weights (``None``: as saved, float32 for all three);
            vectors are returned as float32 either way. A dtype other than float32 changes
            the vectors, so it is part of the fingerprint (caches keep them apart).
        trust_remote_code: passed to ``from_pretrained``; off unless the user asks.

    Example::

        embedder = HFDualEncoder("google/siglip-base-patch16-224")  # or a local directory
        images = embedder.embed_images(["a.png", "b.png"])  # (2, dim), unit rows
        texts = embedder.embed_texts(["a red circle"])
        similarity = images @ texts.T
    """

    def __init__(
        self,
        model_name_or_path: str | Path,
        device: str = "cpu",
        trust_remote_code: bool = False,
        dtype: torch.dtype | None = None,
    ) -> None:
        from transformers import AutoModel, AutoProcessor

        self.name = str(model_name_or_path)
        self.device = torch.device(device)
        self.dtype = dtype
        check_model_path(model_name_or_path)  # ModelPathError, before transformers sees it
        try:
            self.processor = AutoProcessor.from_pretrained(
                model_name_or_path, trust_remote_code=trust_remote_code
            )
            self.model = AutoModel.from_pretrained(
                model_name_or_path,
                trust_remote_code=trust_remote_code,
                **({} if dtype is None else {"dtype": dtype}),
            ).to(self.device)
        except (OSError, ValueError, KeyError) as error:
            raise model_load_error(model_name_or_path, error) from error
        self.model.eval()
        model_type = self.model.config.model_type
        if model_type not in SUPPORTED_MODEL_TYPES:
            raise ModelPathError(
                f"{self.name}: model_type {model_type!r} is not a supported dual encoder; "
                f"expected one of {SUPPORTED_MODEL_TYPES}"
            )
        # SigLIP was trained on texts padded to a fixed length; other padding shifts its outputs.
        self._pad_to_max = model_type.startswith("siglip")
        self._text_mask = takes_text_mask(model_type)
        self._max_text_length = int(self.model.config.text_config.max_position_embeddings)
        self._fingerprint = self._compute_fingerprint(model_name_or_path)

    def _compute_fingerprint(self, model_name_or_path: str | Path) -> str:
        path = Path(model_name_or_path)
        if path.is_dir():
            content = directory_digest(path)
        else:  # a hub id: its config (incl. commit hash when present) identifies the weights
            content = json.dumps(self.model.config.to_dict(), sort_keys=True, default=str)
            content += getattr(self.model.config, "_commit_hash", "") or ""
        if self.dtype not in (None, torch.float32):
            content += f"|dtype={self.dtype}"  # float32 keeps the fingerprints it always had
        return f"{self.model.config.model_type}-{hashlib.sha256(content.encode()).hexdigest()[:16]}"

    @property
    def dim(self) -> int:
        return (
            int(self.model.config.projection_dim)
            if hasattr(self.model.config, "projection_dim")
            else int(self.model.config.text_config.hidden_size)
        )

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    @torch.inference_mode()
    def embed_images(
        self, images: Sequence[ImageInput], batch_size: int = 64, progress: bool = False
    ) -> np.ndarray:
        chunks = [np.zeros((0, self.dim), dtype=np.float32)]
        for batch in _batches(images, batch_size, "embedding images", progress):
            inputs = vision_inputs(
                self.processor.image_processor, [load_image(image) for image in batch]
            )
            inputs = {key: value.to(self.device) for key, value in inputs.items()}
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
            features = _features(self.model.get_image_features(**inputs))
            chunks.append(features.float().cpu().numpy())
        return l2_normalize(np.concatenate(chunks))

    @torch.inference_mode()
    def embed_texts(
        self, texts: Sequence[str], batch_size: int = 256, progress: bool = False
    ) -> np.ndarray:
        chunks = [np.zeros((0, self.dim), dtype=np.float32)]
        for batch in _batches(texts, batch_size, "embedding texts", progress):
            tokens = self.processor.tokenizer(
                list(batch),
                padding="max_length" if self._pad_to_max else True,
                max_length=self._max_text_length,
                truncation=True,
                return_tensors="pt",
            )
            inputs = {
                key: value.to(self.device)
                for key, value in tokens.items()
                if key in ("input_ids", "attention_mask")
            }
            if not self._text_mask:
                inputs.pop("attention_mask", None)
            chunks.append(_features(self.model.get_text_features(**inputs)).float().cpu().numpy())
        return l2_normalize(np.concatenate(chunks))

"""A trainable view of a ``transformers`` CLIP / SigLIP / SigLIP 2 dual encoder for DRUM
fine-tuning.

The same model that ``HFDualEncoder`` serves at retrieval time is trained here, so a saved
checkpoint is directly an embedder (``save_pretrained`` with its processor). Scores follow
the ``concat`` scheme of ``drum.retrieve.strategies``: with unit image / text embeddings
``i, t`` and image weight ``w``::

    v(x)       = [sqrt(w) i(x), sqrt(1 - w) t(x)]
    sim(q, c)  = <v(q), v(c)> = w cos(i_q, i_c) + (1 - w) cos(t_q, t_c)

so training moves exactly the score FAISS later ranks by.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from drum.embed.hf import SUPPORTED_MODEL_TYPES, _features, takes_text_mask, vision_inputs

TRAINABLE_MODES = ("full", "projection")


class TrainableDualEncoder(nn.Module):
    """``model`` (CLIP / SigLIP / SigLIP 2) plus its processor, with differentiable unit
    embeddings."""

    def __init__(self, model: nn.Module, processor: Any) -> None:
        super().__init__()
        model_type = model.config.model_type
        if model_type not in SUPPORTED_MODEL_TYPES:
            raise ValueError(
                f"model_type {model_type!r} is not a supported dual encoder; "
                f"expected one of {SUPPORTED_MODEL_TYPES}"
            )
        self.model = model
        self.processor = processor
        self._pad_to_max = model_type.startswith("siglip")
        self._text_mask = takes_text_mask(model_type)
        self._max_text_length = int(model.config.text_config.max_position_embeddings)

    @classmethod
    def from_pretrained(cls, path: str | Path) -> TrainableDualEncoder:
        from transformers import AutoModel, AutoProcessor

        return cls(AutoModel.from_pretrained(path), AutoProcessor.from_pretrained(path))

    def save_pretrained(self, directory: str | Path) -> None:
        self.model.save_pretrained(directory)
        self.processor.save_pretrained(directory)

    def set_trainable(self, mode: str) -> list[nn.Parameter]:
        """Freeze all but what ``mode`` trains; returns the trainable parameters.

        ``full``: every weight. ``projection``: CLIP's ``visual_projection`` and
        ``text_projection`` (SigLIP, which has none, trains its pooling heads).
        """
        if mode not in TRAINABLE_MODES:
            raise ValueError(f"unknown trainable mode {mode!r}; choose one of {TRAINABLE_MODES}")
        self.model.requires_grad_(mode == "full")
        if mode == "projection":
            names = ("visual_projection", "text_projection", ".head.")
            for name, parameter in self.model.named_parameters():
                if any(part in f".{name}" for part in names):
                    parameter.requires_grad_(True)
        return [p for p in self.model.parameters() if p.requires_grad]

    def vision_inputs(self, images: Sequence[Any]) -> dict[str, torch.Tensor]:
        """The vision tower's inputs for ``images``: ``pixel_values`` (and SigLIP 2's
        ``pixel_attention_mask`` and ``spatial_shapes``), one row per image."""
        return vision_inputs(self.processor.image_processor, images)

    def text_inputs(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        tokens = self.processor.tokenizer(
            list(texts),
            padding="max_length" if self._pad_to_max else True,
            max_length=self._max_text_length,
            truncation=True,
            return_tensors="pt",
        )
        keys = ("input_ids", "attention_mask") if self._text_mask else ("input_ids",)
        return {key: tokens[key] for key in keys}

    def image_embeddings(self, vision: dict[str, torch.Tensor]) -> torch.Tensor:
        """``(N, D)`` unit image embeddings of ``vision_inputs``' rows."""
        features = _features(self.model.get_image_features(**vision))
        return nn.functional.normalize(features.float(), dim=-1)

    def text_embeddings(self, text_inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """``(N, D)`` unit text embeddings."""
        features = _features(self.model.get_text_features(**text_inputs))
        return nn.functional.normalize(features.float(), dim=-1)

    @staticmethod
    def concat(image: torch.Tensor, text: torch.Tensor, image_weight: float) -> torch.Tensor:
        """``(N, 2D)`` vectors whose inner product is the ``concat`` score."""
        return torch.cat(
            [math.sqrt(image_weight) * image, math.sqrt(1.0 - image_weight) * text], dim=-1
        )

"""``IdeficsInterleavedProcessor``: IDEFICS (v1) inputs for prompts rendered by a chat template.

IDEFICS (``IdeficsForVisionText2Text``) never writes an image into the token sequence: each
image stays one ``<image>`` token (which the chat template writes between
``<fake_token_around_image>`` tokens), and the gated cross-attention layers let every text
token attend to the perceiver latents of **the latest image before it** (none before the
first image, and none after an EOS until the next image: the end of a demonstration's
answer). ``IdeficsProcessor`` builds that from a list of strings and images, not from a
rendered chat template, and its ``image_attention_mask`` is laid along its own padded token
axis, which ``HFLVLM`` re-pads. So for ``model_type`` ``idefics`` ``HFLVLM`` uses this
processor:

* ``__call__``: the texts tokenised as they are (each ``<image>`` stays one token: the image's
  span, in ``VisualPositions``' terms, is its ``<image>`` token), ``pixel_values`` of shape
  ``(B, N, C, H, W)`` (each row's images in order, rows padded with zero images to the
  batch's largest count ``N``, at least 1) and ``image_attention_mask``;
* ``token_inputs(input_ids)``: ``image_attention_mask`` ``(B, T, N)`` of any (re-)padded batch
  of ids, by ``IdeficsProcessor``'s rule (``tests/lvlm/test_idefics.py`` checks it against
  ``IdeficsProcessor`` itself); ``HFLVLM`` calls it on the ids it runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from drum.lvlm.expanding_processor import ExpandingProcessor


def image_attention_mask(
    input_ids: torch.Tensor, image_token_id: int, eos_token_id: int | None, num_images: int
) -> torch.Tensor:
    """``(B, T, num_images)`` long: 1 where token ``t`` attends to image ``i``, the latest
    ``<image>`` at or before ``t`` (the ``i``-th of its row); no image before a row's first
    ``<image>``, nor after an EOS until the next ``<image>`` (the EOS itself still attends)."""
    rows, length = input_ids.shape
    mask = torch.zeros(rows, length, num_images, dtype=torch.long)
    for row, ids in enumerate(input_ids.tolist()):
        image, after_eos = -1, False
        for position, token in enumerate(ids):
            if token == image_token_id:
                image, after_eos = image + 1, False
            if not after_eos and 0 <= image < num_images:
                mask[row, position, image] = 1
            if token == eos_token_id:
                after_eos = True
    return mask


class IdeficsInterleavedProcessor(ExpandingProcessor):
    """IDEFICS inputs for chat-template-rendered prompts (module docstring)."""

    @classmethod
    def from_pretrained(
        cls, model_name_or_path: str | Path, trust_remote_code: bool = False
    ) -> IdeficsInterleavedProcessor:
        from transformers import AutoTokenizer, IdeficsImageProcessorPil

        tokenizer = AutoTokenizer.from_pretrained(
            model_name_or_path, trust_remote_code=trust_remote_code
        )
        return cls(
            tokenizer, IdeficsImageProcessorPil.from_pretrained(model_name_or_path), "<image>"
        )

    def preprocess(self, images: list[Any], return_tensors: str) -> dict[str, Any]:
        # IdeficsImageProcessorPil returns the pixel values alone.
        return {"pixel_values": self.image_processor(images, return_tensors=return_tensors)}

    def replacements(self, vision: dict[str, Any]) -> list[str]:
        # The placeholder stays: one <image> token per image.
        return [self.image_token] * int(vision["pixel_values"].shape[0])

    def token_inputs(
        self, input_ids: torch.Tensor, vision: dict[str, Any] | None = None
    ) -> dict[str, torch.Tensor]:
        """``image_attention_mask`` of a padded batch of ids (module docstring); ``vision``
        (the batch's vision inputs) is not needed."""
        counts = (input_ids == self.image_token_id).sum(dim=1)
        num_images = max(1, int(counts.max()) if counts.numel() else 0)
        mask = image_attention_mask(
            input_ids.cpu(), self.image_token_id, self.tokenizer.eos_token_id, num_images
        )
        return {"image_attention_mask": mask.to(input_ids.device)}

    def __call__(
        self,
        text: Sequence[str],
        images: Sequence[Sequence[Any]] | None = None,
        return_tensors: str = "pt",
        padding: bool = True,
        return_text_replacement_offsets: bool = False,
    ) -> Any:
        out = super().__call__(
            text, images, return_tensors, padding, return_text_replacement_offsets
        )
        if "pixel_values" in out:
            flat = out["pixel_values"]  # (N_total, C, H, W), rows' images in order
            counts = [len(row) for row in images or []]
            grouped = flat.new_zeros(len(counts), max(1, *counts), *flat.shape[1:])
            first = 0
            for row, count in enumerate(counts):
                grouped[row, :count] = flat[first : first + count]
                first += count
            out["pixel_values"] = grouped
            out.update(self.token_inputs(out["input_ids"]))
        return out

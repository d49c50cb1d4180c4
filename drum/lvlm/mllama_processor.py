"""``MllamaInterleavedProcessor``: Mllama (Llama 3.2 Vision) inputs whose cross-attention mask
follows the ids ``HFLVLM`` pads.

Mllama never writes an image into the token sequence: each image stays one ``<|image|>``
token, and the cross-attention layers let text tokens attend to the tiles of the images
"before" them: image ``i`` is seen from its ``<|image|>`` token up to the next image's token
(the last image to the end of the sequence), and images whose tokens are adjacent are all seen
until the end of the text that follows the group (``get_cross_attention_token_mask``), each over
its real tiles only. ``MllamaProcessor`` lays that mask, ``cross_attention_mask`` of shape
``(B, T, N, max_tiles)``, along its own padded token axis, and returns no per-image
replacement entries, both of which ``HFLVLM`` needs; so for ``model_type`` ``mllama``
``HFLVLM`` uses this processor, which

* tokenises the rendered texts as they are (each ``<|image|>`` stays one token: the image's
  span, in ``VisualPositions``' terms) and preprocesses each row's images with the
  checkpoint's ``MllamaImageProcessorPil`` (``pixel_values`` ``(B, N, max_tiles, C, H, W)``,
  ``aspect_ratio_ids``, ``aspect_ratio_mask``: rows padded to the batch's most images);
* derives ``cross_attention_mask`` from any (re-)padded ids and those vision inputs
  (``token_inputs``; ``HFLVLM`` calls it on the ids it runs).

``tests/lvlm/test_mllama.py`` checks both against ``MllamaProcessor`` itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from drum.lvlm.expanding_processor import TokenizerProcessor


def image_spans(ids: Sequence[int], image_token_id: int) -> list[tuple[int, int]]:
    """Per image token of one row, in order, the ``[start, end)`` tokens that attend to its
    image: from the token to the next image token or the row's end; a run of adjacent image
    tokens all to the end of the span after the run."""
    places = [i for i, token in enumerate(ids) if token == image_token_id]
    if not places:
        return []
    ends = [*places[1:], len(ids)]
    spans = [[start, end] for start, end in zip(places, ends, strict=True)]
    later = len(ids)
    for span in reversed(spans):
        if span[1] == span[0] + 1:  # adjacent to the next image token
            span[1] = later
        later = span[1]
    return [(start, end) for start, end in spans]


class MllamaInterleavedProcessor(TokenizerProcessor):
    """Mllama inputs for ``HFLVLM`` (module docstring).

    Args:
        tokenizer: the checkpoint's tokenizer (its ``chat_template`` renders prompts).
        image_processor: a ``MllamaImageProcessorPil``.
        image_token: the per-image token.
    """

    def __init__(
        self, tokenizer: Any, image_processor: Any, image_token: str = "<|image|>"
    ) -> None:
        super().__init__(tokenizer, image_processor, image_token)

    @classmethod
    def from_pretrained(
        cls, model_name_or_path: str | Path, trust_remote_code: bool = False
    ) -> MllamaInterleavedProcessor:
        from transformers import AutoTokenizer, MllamaImageProcessorPil

        tokenizer = AutoTokenizer.from_pretrained(
            model_name_or_path, trust_remote_code=trust_remote_code
        )
        image_token = getattr(tokenizer, "image_token", None) or "<|image|>"
        return cls(
            tokenizer, MllamaImageProcessorPil.from_pretrained(model_name_or_path), image_token
        )

    def token_inputs(
        self, input_ids: torch.Tensor, vision: dict[str, Any] | None = None
    ) -> dict[str, torch.Tensor]:
        """``cross_attention_mask`` ``(B, T, N, max_tiles)`` of a padded batch of ids whose
        images' vision inputs are ``vision`` (empty without images: no mask)."""
        if not vision or "aspect_ratio_mask" not in vision:
            return {}
        tiles = vision["aspect_ratio_mask"].to("cpu")  # (B, N, max_tiles): each image's real tiles
        rows, length = input_ids.shape
        mask = torch.zeros(rows, length, *tiles.shape[1:], dtype=torch.long)
        for row, ids in enumerate(input_ids.tolist()):
            for image, (start, end) in enumerate(image_spans(ids, self.image_token_id)):
                mask[row, start:end, image] = tiles[row, image]
        return {"cross_attention_mask": mask.to(input_ids.device)}

    def __call__(
        self,
        text: Sequence[str],
        images: Sequence[Sequence[Any]] | None = None,
        return_tensors: str = "pt",
        padding: bool = True,
        return_text_replacement_offsets: bool = False,
    ) -> Any:
        """``input_ids`` / ``attention_mask`` of ``text``, the vision inputs of ``images`` (one
        list per text) and ``cross_attention_mask``. With ``return_text_replacement_offsets``,
        also ``text_replacement_offsets``: per text, one ``{"type": "image", "replacement":
        "<|image|>"}`` per image (what ``HFLVLM`` reads: one token per image)."""
        from transformers import BatchFeature

        texts = list(text)
        rows = [list(row) for row in images] if images else [[] for _ in texts]
        found = [t.count(self.image_token) for t in texts]
        if found != [len(row) for row in rows]:
            raise ValueError(
                f"{found} {self.image_token} placeholders per text but "
                f"{[len(row) for row in rows]} images"
            )
        data: dict[str, Any] = {}
        if any(rows):
            vision = dict(self.image_processor(images=rows, return_tensors=return_tensors))
            vision.pop("num_tiles")
            data.update(vision)
        data.update(self.tokenizer(texts, padding=padding, return_tensors=return_tensors))
        data.update(self.token_inputs(data["input_ids"], data))
        if return_text_replacement_offsets:
            data["text_replacement_offsets"] = [
                [{"type": "image", "replacement": self.image_token}] * len(row) for row in rows
            ]
        return BatchFeature(data)

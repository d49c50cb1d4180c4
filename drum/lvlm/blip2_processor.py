"""``Blip2InterleavedProcessor``: BLIP-2 inputs for interleaved multi-image prompts.

``Blip2Processor`` prepends ``num_query_tokens`` image tokens to the whole text, once, which
fits one image before the text. ``HFLVLM`` renders prompts whose images sit anywhere between
text, so for BLIP-2 checkpoints it uses this processor instead: each image placeholder
(``<image>``) in the rendered text, in order of appearance across the batch, becomes
``num_query_tokens`` image tokens, the places where ``Blip2ForConditionalGeneration`` writes
that image's projected Q-Former outputs (it fills the batch's image tokens with the images'
query outputs in order). The chat template is the tokenizer's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from drum.lvlm.expanding_processor import TokenizerProcessor


class Blip2InterleavedProcessor(TokenizerProcessor):
    """Every ``<image>`` of the text expanded to ``num_query_tokens`` image tokens, plus the
    ``pixel_values`` of all the batch's images (flattened, prompt order)."""

    def __init__(
        self,
        tokenizer: Any,
        image_processor: Any,
        num_query_tokens: int,
        image_token: str = "<image>",
    ) -> None:
        super().__init__(tokenizer, image_processor, image_token)
        self.num_query_tokens = num_query_tokens

    @classmethod
    def from_pretrained(
        cls, model_name_or_path: str | Path, trust_remote_code: bool = False
    ) -> Blip2InterleavedProcessor:
        from transformers import AutoConfig, AutoTokenizer, BlipImageProcessorPil

        config = AutoConfig.from_pretrained(model_name_or_path, trust_remote_code=trust_remote_code)
        tokenizer = AutoTokenizer.from_pretrained(
            model_name_or_path, trust_remote_code=trust_remote_code
        )
        image_token = getattr(tokenizer, "image_token", None) or "<image>"
        return cls(
            tokenizer,
            BlipImageProcessorPil.from_pretrained(model_name_or_path),
            int(config.num_query_tokens),
            image_token,
        )

    def __call__(
        self,
        text: Sequence[str],
        images: Sequence[Sequence[Any]] | None = None,
        return_tensors: str = "pt",
        padding: bool = True,
        return_text_replacement_offsets: bool = False,
    ) -> Any:
        """``input_ids`` / ``attention_mask`` of ``text`` with image placeholders expanded, and
        ``pixel_values`` of ``images`` (one list per text). With
        ``return_text_replacement_offsets``, also ``text_replacement_offsets``: per text, one
        ``{"type": "image", "replacement": ...}`` per placeholder (what ``HFLVLM`` reads)."""
        from transformers import BatchFeature

        flat = [image for row in images or [] for image in row]
        texts = list(text)
        found = sum(t.count(self.image_token) for t in texts)
        if found != len(flat):
            raise ValueError(f"{found} {self.image_token} placeholders but {len(flat)} images")
        data: dict[str, Any] = {}
        replacement = self.image_token * self.num_query_tokens
        offsets = [
            [{"type": "image", "replacement": replacement}] * t.count(self.image_token)
            for t in texts
        ]
        if flat:
            data.update(self.image_processor(images=flat, return_tensors=return_tensors))
            pattern = re.compile(re.escape(self.image_token))
            texts = [pattern.sub(replacement, t) for t in texts]
        data.update(self.tokenizer(texts, padding=padding, return_tensors=return_tensors))
        if return_text_replacement_offsets:
            data["text_replacement_offsets"] = offsets
        return BatchFeature(data)

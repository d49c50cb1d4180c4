"""``Qwen2VLImageOnlyProcessor``: the image half of Qwen2-VL's processor, for machines without
torchvision (whose absence keeps ``AutoProcessor`` from building Qwen2-VL / Qwen2.5-VL /
Qwen3-VL processors). ``HFLVLM`` falls back to it for those model types (Qwen3-VL's image
processor and image-token expansion are Qwen2-VL's)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


class Qwen2VLImageOnlyProcessor:
    """The image half of ``Qwen2VLProcessor``, for machines without torchvision.

    ``Qwen2VLProcessor`` cannot be constructed without its video processor, and that needs
    torchvision. This stand-in does what ``HFLVLM`` needs of it for images: the checkpoint's
    ``Qwen2VLImageProcessorPil`` cuts every image into ``image_grid_thw = (t, h, w)`` patches
    (``pixel_values`` is all patches of the batch, flattened), and each image placeholder
    (``<|image_pad|>``) in the rendered text, in order of appearance across the batch, becomes
    ``t * h * w // merge_size**2`` placeholders, one per token the vision tower's patch merger
    outputs, exactly as ``Qwen2VLProcessor.replace_image_token`` expands it. The chat template
    is the tokenizer's or, where the tokenizer has none, the checkpoint's processor-level
    ``chat_template.jinja`` / ``chat_template.json`` (how Qwen3-VL checkpoints ship it).
    ``mm_token_type_ids`` (M-RoPE's image-token mask) is not returned:
    ``HFLVLM`` derives it from the final, re-padded ids.
    """

    def __init__(
        self, tokenizer: Any, image_processor: Any, image_token: str = "<|image_pad|>"
    ) -> None:
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.image_token = image_token
        self.image_token_id = tokenizer.convert_tokens_to_ids(image_token)
        self.chat_template = getattr(tokenizer, "chat_template", None)

    @classmethod
    def from_pretrained(
        cls, model_name_or_path: str | Path, trust_remote_code: bool = False
    ) -> Qwen2VLImageOnlyProcessor:
        # Explicit PIL class: the torchvision-backed ``Qwen2VLImageProcessor`` is what
        # ``AutoImageProcessor`` would pick first.
        from transformers import AutoTokenizer, Qwen2VLImageProcessorPil

        tokenizer = AutoTokenizer.from_pretrained(
            model_name_or_path, trust_remote_code=trust_remote_code
        )
        processor = cls(tokenizer, Qwen2VLImageProcessorPil.from_pretrained(model_name_or_path))
        if processor.chat_template is None:
            processor.chat_template = _processor_chat_template(model_name_or_path)
        return processor

    def apply_chat_template(self, conversation: list[dict[str, Any]], **kwargs: Any) -> Any:
        return self.tokenizer.apply_chat_template(
            conversation, chat_template=self.chat_template, **kwargs
        )

    def __call__(
        self,
        text: Sequence[str],
        images: Sequence[Sequence[Any]] | None = None,
        return_tensors: str = "pt",
        padding: bool = True,
        return_text_replacement_offsets: bool = False,
    ) -> Any:
        """``input_ids`` / ``attention_mask`` of ``text`` with image placeholders expanded, plus
        ``pixel_values`` / ``image_grid_thw`` of ``images`` (one list of images per text).

        With ``return_text_replacement_offsets``, also ``text_replacement_offsets``: per text,
        one ``{"type": "image", "replacement": ...}`` per placeholder in order, the string it
        became (the subset of ``ProcessorMixin``'s entries ``HFLVLM`` reads)."""
        from transformers import BatchFeature

        flat = [image for row in images or [] for image in row]
        texts = list(text)
        data: dict[str, Any] = {}
        offsets: list[list[dict[str, Any]]] = [[] for _ in texts]
        if flat:
            vision = self.image_processor(images=flat, return_tensors=return_tensors)
            merge = self.image_processor.merge_size**2
            counts = iter([int(grid.prod()) // merge for grid in vision["image_grid_thw"]])
            found = sum(t.count(self.image_token) for t in texts)
            if found != len(flat):
                raise ValueError(f"{found} {self.image_token} placeholders but {len(flat)} images")
            pattern = re.compile(re.escape(self.image_token))

            def expand(row: list[dict[str, Any]]) -> Callable[[re.Match[str]], str]:
                def replace(_: re.Match[str]) -> str:
                    replacement = self.image_token * next(counts)
                    row.append({"type": "image", "replacement": replacement})
                    return replacement

                return replace

            texts = [pattern.sub(expand(row), t) for t, row in zip(texts, offsets, strict=True)]
            data.update(vision)
        elif any(self.image_token in t for t in texts):
            raise ValueError(f"{self.image_token} placeholders in the text but no images")
        data.update(self.tokenizer(texts, padding=padding, return_tensors=return_tensors))
        if return_text_replacement_offsets:
            data["text_replacement_offsets"] = offsets
        return BatchFeature(data)


def _processor_chat_template(model_name_or_path: str | Path) -> str | None:
    """The checkpoint's processor-level chat template (``chat_template.jinja``, else the
    ``"chat_template"`` of ``chat_template.json``), or None."""
    import json

    from transformers.utils import cached_file

    for name in ("chat_template.jinja", "chat_template.json"):
        found = cached_file(
            model_name_or_path,
            name,
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
        )
        if found is not None:
            text = Path(found).read_text(encoding="utf-8")
            return text if name.endswith(".jinja") else json.loads(text).get("chat_template")
    return None

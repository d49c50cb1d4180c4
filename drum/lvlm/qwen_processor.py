"""``Qwen2VLImageOnlyProcessor``: the image half of Qwen2-VL's processor, for machines without
torchvision (whose absence keeps ``AutoProcessor`` from building Qwen2-VL / Qwen2.5-VL /
Qwen3-VL processors). ``HFLVLM`` falls back to it for those model types (Qwen3-VL's image
processor and image-token expansion are Qwen2-VL's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drum.lvlm.expanding_processor import ExpandingProcessor


class Qwen2VLImageOnlyProcessor(ExpandingProcessor):
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
        super().__init__(tokenizer, image_processor, image_token)

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

    def replacements(self, vision: dict[str, Any]) -> list[str]:
        """Each image's placeholder repeated once per merged patch group: ``t * h * w //
        merge_size**2`` of its ``image_grid_thw``."""
        merge = self.image_processor.merge_size**2
        return [self.image_token * (int(grid.prod()) // merge) for grid in vision["image_grid_thw"]]


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

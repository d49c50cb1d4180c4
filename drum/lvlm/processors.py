"""How ``HFLVLM`` builds a checkpoint's processor: by its family record's ``processor`` kind.

* ``"auto"``: ``AutoProcessor``.
* ``"qwen_image_only"``: ``AutoProcessor``, or where it needs the missing torchvision (the
  Qwen2-VL / Qwen2.5-VL / Qwen3-VL processors always build a video processor)
  ``Qwen2VLImageOnlyProcessor`` (``drum.lvlm.qwen_processor``), which reproduces their image
  half (Qwen3-VL's image processor and image-token expansion are Qwen2-VL's).
* ``"image_only"``: ``AutoProcessor``, or where it needs torchvision the family's own
  processor class without its video processor (``drum.lvlm.image_only_processor``;
  LLaVA-OneVision).
* ``"blip2_interleaved"``: ``Blip2InterleavedProcessor`` (``drum.lvlm.blip2_processor``).
* ``"idefics2_counted"``: ``Idefics2CountingProcessor`` (``drum.lvlm.idefics2_processor``).

A ``model_type`` without a record is loaded as ``"auto"`` (``families.served_family``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drum.lvlm.families import served_family


def load_processor(model_name_or_path: str | Path, trust_remote_code: bool = False) -> Any:
    """The processor ``HFLVLM`` renders and encodes prompts with (module docstring)."""
    from transformers import AutoConfig, AutoProcessor

    config = AutoConfig.from_pretrained(model_name_or_path, trust_remote_code=trust_remote_code)
    kind = served_family(config.model_type).processor
    if kind == "blip2_interleaved":
        from drum.lvlm.blip2_processor import Blip2InterleavedProcessor

        return Blip2InterleavedProcessor.from_pretrained(model_name_or_path, trust_remote_code)
    if kind == "idefics2_counted":
        from drum.lvlm.idefics2_processor import Idefics2CountingProcessor

        return Idefics2CountingProcessor.from_pretrained(
            model_name_or_path, trust_remote_code=trust_remote_code
        )
    try:
        return AutoProcessor.from_pretrained(
            model_name_or_path, trust_remote_code=trust_remote_code
        )
    except (ImportError, OSError) as error:
        # ImportError: torchvision, for a video processor; OSError: a checkpoint saved image-only
        # (no video processor config), as its loader saves it.
        if kind == "image_only":
            from drum.lvlm.image_only_processor import load_image_only

            return load_image_only(model_name_or_path, trust_remote_code)
        if not isinstance(error, ImportError):
            raise
        if kind == "qwen_image_only":
            from drum.lvlm.qwen_processor import Qwen2VLImageOnlyProcessor

            return Qwen2VLImageOnlyProcessor.from_pretrained(model_name_or_path, trust_remote_code)
        raise

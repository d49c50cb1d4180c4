"""How ``HFLVLM`` builds a checkpoint's processor: by its family record's ``processor`` kind
(``LVLMFamily.processor``, ``PROCESSORS``).

* ``"auto"``: ``AutoProcessor``.
* Image-only kinds (``IMAGE_ONLY``): ``AutoProcessor`` where it loads; where it refuses for
  want of torchvision (a video processor, a declared backend), the class that does the
  processor's image half with the family's Pil image processor: ``Qwen2VLImageOnlyProcessor``
  (Qwen2-VL / Qwen2.5-VL / Qwen3-VL: Qwen3-VL's image processor and image-token expansion are
  Qwen2-VL's), ``InternVLImageOnlyProcessor``, ``PixtralImageOnlyProcessor`` (Mistral3).
* ``"image_only"``: ``AutoProcessor``, or where it needs torchvision, or the checkpoint was
  saved without a video processor config, the family's own processor class without its video
  processor (``drum.lvlm.image_only_processor``; LLaVA-OneVision).
* Own kinds (``OWN``): always DRUM's class, where the family's processor cannot render
  interleaved prompts as ``HFLVLM`` needs them (BLIP-2's prepends every image; IDEFICS's
  takes lists of strings and images; IDEFICS's and Mllama's lay their cross-attention masks
  along their own padding; Idefics2's does not say how many tokens each image became).

A ``model_type`` without a record is loaded as ``"auto"`` (``families.served_family``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drum.lvlm.blip2_processor import Blip2InterleavedProcessor
from drum.lvlm.families import served_family
from drum.lvlm.idefics2_processor import Idefics2CountingProcessor
from drum.lvlm.idefics_processor import IdeficsInterleavedProcessor
from drum.lvlm.image_only_processor import load_image_only
from drum.lvlm.internvl_processor import InternVLImageOnlyProcessor
from drum.lvlm.mllama_processor import MllamaInterleavedProcessor
from drum.lvlm.pixtral_processor import PixtralImageOnlyProcessor
from drum.lvlm.qwen_processor import Qwen2VLImageOnlyProcessor

IMAGE_ONLY: dict[str, Any] = {
    "qwen_image_only": Qwen2VLImageOnlyProcessor,
    "internvl_image_only": InternVLImageOnlyProcessor,
    "pixtral_image_only": PixtralImageOnlyProcessor,
}
OWN: dict[str, Any] = {
    "blip2_interleaved": Blip2InterleavedProcessor,
    "idefics_interleaved": IdeficsInterleavedProcessor,
    "mllama_interleaved": MllamaInterleavedProcessor,
    "idefics2_counted": Idefics2CountingProcessor,
}


def load_processor(model_name_or_path: str | Path, trust_remote_code: bool = False) -> Any:
    """The processor ``HFLVLM`` renders and encodes prompts with (module docstring)."""
    from transformers import AutoConfig, AutoProcessor

    config = AutoConfig.from_pretrained(model_name_or_path, trust_remote_code=trust_remote_code)
    kind = served_family(config.model_type).processor
    if kind in OWN:
        return OWN[kind].from_pretrained(model_name_or_path, trust_remote_code=trust_remote_code)
    try:
        return AutoProcessor.from_pretrained(
            model_name_or_path, trust_remote_code=trust_remote_code
        )
    except (ImportError, ValueError, OSError) as error:
        # Qwen2-VL's, LLaVA-OneVision's and Pixtral's raise ImportError without torchvision,
        # InternVL's a ValueError saying it requires torchvision; OSError: a checkpoint saved
        # image-only (no video processor config), as its loader saves it.
        if kind == "image_only":
            return load_image_only(model_name_or_path, trust_remote_code)
        if kind not in IMAGE_ONLY or isinstance(error, OSError):
            raise
        return IMAGE_ONLY[kind].from_pretrained(model_name_or_path, trust_remote_code)

"""A family's own processor without its video processor, for machines without torchvision.

Some processors (LLaVA-OneVision's) hold a video processor, and ``transformers`` builds video
processors only with torchvision, so ``AutoProcessor`` cannot load such a checkpoint here
(the registry's torchvision wheels do not load their operators with the pinned CPU torch).
DRUM never sends videos, and the image half of these processors does not touch the video
processor: ``image_only(cls)`` is ``cls`` with ``video_processor`` dropped from its
sub-processors, so it is built, saved and loaded from the image processor and tokenizer alone
and expands images exactly as ``cls`` does (its own ``__call__``, unchanged). A video in the
input would fail on the missing attribute.

``HFLVLM`` loads a record whose ``processor`` is ``"image_only"`` through ``AutoProcessor``
where that works (torchvision present) and through ``load_image_only`` otherwise.

Example::

    processor = load_image_only("llava-hf/llava-onevision-qwen2-0.5b-ov-hf")
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

DROPPED = "video_processor"


@cache
def image_only(processor_class: type) -> type:
    """``processor_class`` without its video processor (module docstring)."""
    attributes = [name for name in processor_class.get_attributes() if name != DROPPED]

    def get_attributes(cls: type) -> list[str]:
        return list(attributes)

    # Same name: what ``save_pretrained`` records as ``processor_class`` stays the real one.
    return type(
        processor_class.__name__,
        (processor_class,),
        {"get_attributes": classmethod(get_attributes), "__module__": __name__},
    )


def processor_class_of(model_type: str) -> type:
    """The ``transformers`` processor class ``AutoProcessor`` builds for ``model_type``."""
    import transformers
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    name = PROCESSOR_MAPPING_NAMES.get(model_type)
    if name is None:
        raise ValueError(f"transformers has no processor class for model_type {model_type!r}")
    return getattr(transformers, name)


def load_image_only(model_name_or_path: str | Path, trust_remote_code: bool = False) -> Any:
    """The checkpoint's processor without its video processor (its image processor, on the
    PIL backend when torchvision is missing, and its tokenizer and chat template)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_name_or_path, trust_remote_code=trust_remote_code)
    cls = image_only(processor_class_of(str(config.model_type)))
    return cls.from_pretrained(model_name_or_path, trust_remote_code=trust_remote_code)

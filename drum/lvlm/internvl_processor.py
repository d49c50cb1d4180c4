"""``InternVLImageOnlyProcessor``: the image half of InternVL's processor, for machines without
torchvision.

``InternVLProcessor`` cannot be built without its video processor (``InternVLVideoProcessor``),
which needs torchvision, so ``AutoProcessor`` refuses an InternVL checkpoint here; for
``model_type`` ``internvl`` ``HFLVLM`` falls back to this processor, which does the images'
part of ``InternVLProcessor`` from the checkpoint's tokenizer (carrying the chat template) and
its ``GotOcr2ImageProcessorPil``:

* every image is cut into ``num_patches`` tiles (``crop_to_patches``, on as in
  ``InternVLProcessor``: a grid of ``size``-pixel crops chosen by the image's aspect ratio,
  plus a thumbnail when there is more than one); ``pixel_values`` is every tile of the batch,
  images in order of appearance;
* each image placeholder of the rendered text (``<IMG_CONTEXT>``, the tokenizer's
  ``context_image_token``) becomes ``<img>`` + ``image_seq_length * num_patches`` placeholders
  + ``</img>``, one placeholder per visual token the projector writes, as
  ``InternVLProcessor.replace_image_token`` expands it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from drum.lvlm.expanding_processor import ExpandingProcessor

# InternVLProcessor's own default (its ``images_kwargs``): tile every image.
CROP_TO_PATCHES = True


class InternVLImageOnlyProcessor(ExpandingProcessor):
    """The image half of ``InternVLProcessor`` (module docstring).

    Args:
        tokenizer: the checkpoint's tokenizer (its ``chat_template`` is used).
        image_processor: a ``GotOcr2ImageProcessorPil``.
        image_seq_length: visual tokens per tile (``(image_size / patch_size)**2 *
            downsample_ratio**2``).
        image_token, start_image_token, end_image_token: the placeholder and the tokens around
            each image's run of placeholders.
    """

    def __init__(
        self,
        tokenizer: Any,
        image_processor: Any,
        image_seq_length: int,
        image_token: str = "<IMG_CONTEXT>",
        start_image_token: str = "<img>",
        end_image_token: str = "</img>",
    ) -> None:
        super().__init__(tokenizer, image_processor, image_token)
        self.image_seq_length = image_seq_length
        self.start_image_token = start_image_token
        self.end_image_token = end_image_token

    @classmethod
    def from_pretrained(
        cls, model_name_or_path: str | Path, trust_remote_code: bool = False
    ) -> InternVLImageOnlyProcessor:
        # Explicit Pil class: the torchvision-backed ``GotOcr2ImageProcessor`` is what
        # ``AutoImageProcessor`` would pick first.
        from transformers import AutoTokenizer, GotOcr2ImageProcessorPil
        from transformers.utils import cached_file

        tokenizer = AutoTokenizer.from_pretrained(
            model_name_or_path, trust_remote_code=trust_remote_code
        )
        # image_seq_length: the processor's config where there is one, else the model's.
        seq_length = None
        for name in ("processor_config.json", "config.json"):
            found = cached_file(
                model_name_or_path, name, _raise_exceptions_for_missing_entries=False
            )
            if found is not None and seq_length is None:
                seq_length = json.loads(Path(found).read_text()).get("image_seq_length")
        if seq_length is None:
            raise ValueError(f"{model_name_or_path}: no image_seq_length in its configs")
        return cls(
            tokenizer,
            GotOcr2ImageProcessorPil.from_pretrained(model_name_or_path),
            int(seq_length),
            getattr(tokenizer, "context_image_token", None) or "<IMG_CONTEXT>",
            getattr(tokenizer, "start_image_token", None) or "<img>",
            getattr(tokenizer, "end_image_token", None) or "</img>",
        )

    def preprocess(self, images: list[Any], return_tensors: str) -> dict[str, Any]:
        return dict(
            self.image_processor(
                images=images, crop_to_patches=CROP_TO_PATCHES, return_tensors=return_tensors
            )
        )

    def replacements(self, vision: dict[str, Any]) -> list[str]:
        tiles = [int(n) for n in vision.pop("num_patches")]
        return [
            f"{self.start_image_token}{self.image_token * (self.image_seq_length * n)}"
            f"{self.end_image_token}"
            for n in tiles
        ]

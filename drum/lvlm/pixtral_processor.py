"""``PixtralImageOnlyProcessor``: ``PixtralProcessor`` (Mistral3's) for machines without
torchvision.

``PixtralProcessor`` declares torchvision as a requirement and refuses to be built without it,
although all its image work is its image processor's, which has a Pil version. For
``model_type`` ``mistral3`` ``HFLVLM`` falls back to this processor, which does what
``PixtralProcessor`` does for images, from the checkpoint's tokenizer (carrying the chat
template), its ``PixtralImageProcessorPil`` and the model's config:

* every image is resized so that its longest edge fits ``size["longest_edge"]``, both sides
  a multiple of ``patch_size * spatial_merge_size`` (the processor passes that product to its
  image processor as the patch size); ``pixel_values`` is padded to the batch's largest image
  and ``image_sizes`` says each image's size;
* each ``[IMG]`` of the rendered text becomes one row of ``[IMG]`` per merged patch column
  ended by ``[IMG_BREAK]``, per merged patch row, the last ``[IMG_BREAK]`` replaced by
  ``[IMG_END]``, as ``PixtralProcessor.replace_image_token`` expands it. An image's span thus
  holds its row breaks; its visual tokens are its ``[IMG]`` tokens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drum.lvlm.expanding_processor import ExpandingProcessor


class PixtralImageOnlyProcessor(ExpandingProcessor):
    """``PixtralProcessor``'s image work without torchvision (module docstring).

    Args:
        tokenizer: the checkpoint's tokenizer (its ``chat_template`` is used).
        image_processor: a ``PixtralImageProcessorPil``.
        patch_size: the vision tower's patch size.
        spatial_merge_size: patches per side the projector merges into one visual token.
    """

    def __init__(
        self,
        tokenizer: Any,
        image_processor: Any,
        patch_size: int,
        spatial_merge_size: int,
        image_token: str = "[IMG]",
        image_break_token: str = "[IMG_BREAK]",
        image_end_token: str = "[IMG_END]",
    ) -> None:
        super().__init__(tokenizer, image_processor, image_token)
        self.patch_size = patch_size
        self.spatial_merge_size = spatial_merge_size
        self.image_break_token = image_break_token
        self.image_end_token = image_end_token

    @classmethod
    def from_pretrained(
        cls, model_name_or_path: str | Path, trust_remote_code: bool = False
    ) -> PixtralImageOnlyProcessor:
        from transformers import AutoConfig, AutoTokenizer, PixtralImageProcessorPil

        config = AutoConfig.from_pretrained(model_name_or_path, trust_remote_code=trust_remote_code)
        tokenizer = AutoTokenizer.from_pretrained(
            model_name_or_path, trust_remote_code=trust_remote_code
        )
        return cls(
            tokenizer,
            PixtralImageProcessorPil.from_pretrained(model_name_or_path),
            int(config.vision_config.patch_size),
            int(config.spatial_merge_size),
        )

    def preprocess(self, images: list[Any], return_tensors: str) -> dict[str, Any]:
        step = self.patch_size * self.spatial_merge_size
        return dict(
            self.image_processor(
                images=images,
                patch_size={"height": step, "width": step},
                return_tensors=return_tensors,
            )
        )

    def replacements(self, vision: dict[str, Any]) -> list[str]:
        step = self.patch_size * self.spatial_merge_size
        out = []
        for height, width in vision["image_sizes"].tolist():
            row = self.image_token * (int(width) // step) + self.image_break_token
            text = row * (int(height) // step)
            out.append(text[: -len(self.image_break_token)] + self.image_end_token)
        return out

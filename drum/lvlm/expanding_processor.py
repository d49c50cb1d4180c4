"""``ExpandingProcessor``: the image half of a processor whose own class cannot be built here.

Several families' processors (InternVL's, Pixtral's for Mistral3) declare torchvision as a
requirement (a video processor, or a backend check), so ``AutoProcessor`` refuses them on a
machine without it although their image processors have Pil versions. What ``HFLVLM`` needs of
a processor for images is small: the chat template, and one call that preprocesses a batch's
images and expands each image placeholder of the rendered texts, in order of appearance, into
the tokens the model writes that image's encoding to. A subclass says how a preprocessed
batch expands (``replacements``); the rest is here (Qwen2-VL's, InternVL's, Pixtral's and
IDEFICS's). ``TokenizerProcessor`` below it is what every processor DRUM builds shares (BLIP-2's
and Mllama's too): the tokenizer, its chat template, the image processor, the placeholder.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


class TokenizerProcessor:
    """What every processor DRUM builds itself shares: the checkpoint's tokenizer (its
    ``chat_template`` renders prompts, ``apply_chat_template`` as ``ProcessorMixin``'s), the
    family's (Pil) image processor and the per-image placeholder token.

    Args:
        tokenizer: the checkpoint's tokenizer.
        image_processor: the family's (Pil) image processor.
        image_token: the placeholder the chat template writes per image.
    """

    def __init__(self, tokenizer: Any, image_processor: Any, image_token: str) -> None:
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.image_token = image_token
        self.image_token_id = tokenizer.convert_tokens_to_ids(image_token)
        self.chat_template = getattr(tokenizer, "chat_template", None)

    def apply_chat_template(self, conversation: list[dict[str, Any]], **kwargs: Any) -> Any:
        return self.tokenizer.apply_chat_template(
            conversation, chat_template=self.chat_template, **kwargs
        )

    def save_pretrained(self, directory: str | Path) -> None:
        """Write the tokenizer (with its chat template) and the image processor, what the
        family's ``from_pretrained`` reads back beside the model (VPG-C's baselines save a
        whole model directory)."""
        self.tokenizer.save_pretrained(directory)
        self.image_processor.save_pretrained(directory)


class ExpandingProcessor(TokenizerProcessor):
    """Tokenizer + image processor; each ``image_token`` of the text becomes its image's
    ``replacements(vision)`` entry (subclasses), in order of appearance across the batch.

    Args:
        tokenizer: the checkpoint's tokenizer (its ``chat_template`` renders prompts).
        image_processor: the family's (Pil) image processor.
        image_token: the placeholder the chat template writes per image; also the token that
            the replacement repeats once per visual token.
    """

    def preprocess(self, images: list[Any], return_tensors: str) -> dict[str, Any]:
        """The model's vision inputs for ``images`` (flattened, prompt order), plus whatever
        ``replacements`` reads (popped there)."""
        return dict(self.image_processor(images=images, return_tensors=return_tensors))

    def replacements(self, vision: dict[str, Any]) -> list[str]:
        """What each image's placeholder becomes, images in order (may pop helper keys)."""
        raise NotImplementedError

    def __call__(
        self,
        text: Sequence[str],
        images: Sequence[Sequence[Any]] | None = None,
        return_tensors: str = "pt",
        padding: bool = True,
        return_text_replacement_offsets: bool = False,
    ) -> Any:
        """``input_ids`` / ``attention_mask`` of ``text`` with image placeholders expanded,
        plus the vision inputs of ``images`` (one list of images per text). With
        ``return_text_replacement_offsets``, also ``text_replacement_offsets``: per text, one
        ``{"type": "image", "replacement": ...}`` per placeholder in order, the string it
        became (the subset of ``ProcessorMixin``'s entries ``HFLVLM`` reads)."""
        from transformers import BatchFeature

        flat = [image for row in images or [] for image in row]
        texts = list(text)
        found = sum(t.count(self.image_token) for t in texts)
        if found != len(flat):
            raise ValueError(f"{found} {self.image_token} placeholders but {len(flat)} images")
        data: dict[str, Any] = {}
        offsets: list[list[dict[str, Any]]] = [[] for _ in texts]
        if flat:
            vision = self.preprocess(flat, return_tensors)
            replacements = iter(self.replacements(vision))
            pieces = [t.split(self.image_token) for t in texts]
            for row, (parts, entries) in enumerate(zip(pieces, offsets, strict=True)):
                out = [parts[0]]
                for part in parts[1:]:
                    replacement = next(replacements)
                    entries.append({"type": "image", "replacement": replacement})
                    out += [replacement, part]
                texts[row] = "".join(out)
            data.update(vision)
        data.update(self.tokenizer(texts, padding=padding, return_tensors=return_tensors))
        if return_text_replacement_offsets:
            data["text_replacement_offsets"] = offsets
        return BatchFeature(data)

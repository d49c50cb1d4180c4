"""How ``HFLVLM`` turns prompts into model inputs (``PromptEncoding``, a mixin of ``HFLVLM``):
rendering by the model's chat template, token ids with every image expanded into its visual
tokens (by the processor, or for LLaVA from the image-feature cache's encodings without the
processor's image work), the processor's pixel inputs swapped for the image-feature cache's
encodings (``_cached_image_features``: LLaVA, Gemma 3, Qwen2-VL, Qwen2.5-VL, Qwen3-VL with its
deepstack features; the family record's ``feature_cache`` names how pixels are cut per image and
what an image's encoding holds), the per-image token counts that
visual positions are cut by, and the padded batches with the per-token inputs some families
take (M-RoPE's ``mm_token_type_ids``, Gemma 3's ``token_type_ids``, IDEFICS's and Mllama's
cross-attention masks).

Kept apart from ``drum.lvlm.hf`` (scoring, generation, hooks, context) because the shared-prefix
scorer (``drum.lvlm.prefix``) and the bucketed scorer (``drum.lvlm.bucketed``) build on the same
steps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from drum.data.images import load_image
from drum.lvlm.hooks import VisualPositions
from drum.lvlm.image_features import DeepstackEncoding, Encoding
from drum.lvlm.prompt import ICLPrompt

if TYPE_CHECKING:
    from drum.lvlm.families import LVLMFamily
    from drum.lvlm.image_features import ImageFeatureCache


def encoder_outputs(features: Sequence[Encoding], stacked: bool = False) -> dict[str, Any]:
    """Image encodings (one per image, in the prompts' order) as the model's
    ``mm_encoder_outputs`` input: the list of tensors, or (``stacked``: Gemma 3) one
    ``(images, tokens, width)`` tensor; for ``DeepstackEncoding``s (Qwen3-VL), the pooled
    tensors and, per deepstack layer, the list of the images' features for that layer, in
    transformers' deepstack output (what its ``get_image_features`` returns after its split)."""
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    deep = [feature for feature in features if isinstance(feature, DeepstackEncoding)]
    if deep:
        from transformers.models.qwen3_vl.modeling_qwen3_vl import (
            BaseModelOutputWithDeepstackFeatures,
        )

        layers = len(deep[0].deepstack)
        output: Any = BaseModelOutputWithDeepstackFeatures(
            pooler_output=[feature.pooled for feature in deep],
            deepstack_features=[[feature.deepstack[i] for feature in deep] for i in range(layers)],
        )
        return {"mm_encoder_outputs": {"image": output}}
    pooled: Any = torch.stack(features) if stacked else list(features)
    return {"mm_encoder_outputs": {"image": BaseModelOutputWithPooling(pooler_output=pooled)}}


# Processor outputs laid out along the processor's own padded token axis: dropped, since
# scoring and generation re-pad the ids themselves (``mm_token_type_ids`` is re-derived). Named
# rather than detected by shape, which a vision tensor can match by coincidence (Qwen2-VL's
# ``pixel_values`` is ``(patches, patch_dim)``).
TOKEN_ALIGNED_KEYS = (
    "input_ids",
    "attention_mask",
    "token_type_ids",
    "mm_token_type_ids",
    "image_attention_mask",  # IDEFICS: re-derived by the processor's token_inputs
    "cross_attention_mask",  # Mllama: likewise
)


@dataclass(frozen=True, eq=False)
class PaddedBatch:
    """Token-id rows padded to one length (``PromptEncoding._padded``): ids and mask on the model's
    device, ``{"mm_token_type_ids": ...}`` for models that take them (else empty), and the
    visual positions (None unless asked for). ``token_types`` also holds what the
    processor's ``token_inputs`` derives from the padded ids (cross-attention masks)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    token_types: dict[str, torch.Tensor]
    visual: VisualPositions | None


class PromptEncoding:
    """Prompt encoding for ``HFLVLM``: the attributes below are set by its ``__init__``."""

    name: str
    model_type: str
    device: torch.device
    processor: Any
    tokenizer: Any
    family: LVLMFamily
    image_token_id: int | None
    feature_cache: ImageFeatureCache
    # The forward argument for the per-token image mask, or "" (``HFLVLM.__init__``).
    _token_types: str
    _feature_cache_bypass: int
    _expands_like_llava: bool

    def render(self, prompt: ICLPrompt) -> str:
        """The prompt as the model's chat template writes it (before image expansion)."""
        return self.processor.apply_chat_template(
            prompt.to_messages(), add_generation_prompt=True, tokenize=False
        )

    def _encode(
        self, prompts: Sequence[ICLPrompt], count_image_tokens: bool = False
    ) -> tuple[list[list[int]], dict[str, Any], list[list[Path]], list[list[int]] | None]:
        """Token ids per prompt (images expanded, unpadded), the batch's vision inputs, each
        prompt's image paths and, if ``count_image_tokens``, how many image tokens the
        processor gave each image of each prompt (what per-image spans are cut by)."""
        texts = [self.render(prompt) for prompt in prompts]
        images = [list(prompt.images) for prompt in prompts]
        kwargs: dict[str, Any] = {"text": texts, "return_tensors": "pt", "padding": True}
        if any(images):
            kwargs["images"] = [[load_image(p) for p in row] for row in images]
            if count_image_tokens:
                kwargs["return_text_replacement_offsets"] = True
        batch = self.processor(**kwargs)
        mask = batch["attention_mask"].bool()
        ids = [
            row[row_mask].tolist() for row, row_mask in zip(batch["input_ids"], mask, strict=True)
        ]
        vision = {
            key: value
            for key, value in batch.items()
            if key not in TOKEN_ALIGNED_KEYS and key != "text_replacement_offsets"
        }
        if self.family.requires_image and "pixel_values" not in vision:
            raise ValueError(
                f"{self.name}: a {self.model_type} batch needs at least one image (its forward "
                "and generate take pixel_values); batch text-only prompts with imaged ones"
            )
        counts = None
        if count_image_tokens:
            # Each image's placeholder became one replacement string (for Idefics3 with all
            # its tiles, Gemma 3 with its pan-and-scan crops): its image tokens are that
            # string's image tokens (Gemma 3's placeholder is another token than those).
            offsets = batch.get("text_replacement_offsets") or [[] for _ in prompts]
            token = self.tokenizer.convert_ids_to_tokens(self.image_token_id)
            counts = [
                [entry["replacement"].count(token) for entry in row if entry["type"] == "image"]
                for row in offsets
            ]
        return ids, vision, images, counts

    def _token_type_ids(self, ids: list[int]) -> list[int]:
        # The per-token image mask (``_token_types``): 1 at image tokens, 0 elsewhere.
        return [int(token == self.image_token_id) for token in ids]

    # --------------------------------------------------------------------- image feature cache
    def _uses_cached_features(self) -> bool:
        """Whether image encodings come from the feature cache: families whose record has
        ``feature_cache``, with a non-empty cache, outside ``feature_cache_bypassed``."""
        return (
            self.family.feature_cache
            and self.feature_cache.capacity > 0
            and not self._feature_cache_bypass
        )

    def _cached_encodings(
        self, images: list[list[Path]], vision: dict[str, Any]
    ) -> list[Encoding] | None:
        """The encodings of the batch's images (one per image, prompt by prompt), from the
        feature cache (the missing ones encoded in one vision call and cached); None where the
        cache does not serve the batch: off, bypassed, no pixels, or pixel inputs that are not
        one entry per image in the family's layout (Gemma 3's pan-and-scan crops)."""
        if not self._uses_cached_features() or "pixel_values" not in vision:
            return None
        flat = [path for row in images for path in row]
        pixels = self.feature_cache.layout.split(vision, len(flat))
        return None if pixels is None else self.feature_cache.features(flat, pixels)

    def _cached_image_features(
        self, images: list[list[Path]], vision: dict[str, Any]
    ) -> dict[str, Any]:
        """Replace ``pixel_values`` by cached encodings (``_cached_encodings``) passed as
        ``mm_encoder_outputs``; the other vision inputs stay (Qwen's ``image_grid_thw``, which
        its M-RoPE positions need). Left as they are where the cache does not serve them."""
        features = self._cached_encodings(images, vision)
        if features is None:
            return vision
        rest = {k: v for k, v in vision.items() if k != "pixel_values"}
        return {**rest, **encoder_outputs(features, self.family.stacked_encodings)}

    def _encode_from_features(
        self, prompts: Sequence[ICLPrompt], count_image_tokens: bool = False
    ) -> tuple[list[list[int]], dict[str, Any], list[list[Path]], list[list[int]] | None]:
        """``_encode`` for LLaVA prompts whose image encodings come from the feature cache
        (``_encode_rows``), with the encodings already in the vision inputs (as
        ``mm_encoder_outputs``)."""
        ids, features, images, counts = self._encode_rows(prompts)
        flat = [feature for row in features for feature in row]
        vision = encoder_outputs(flat) if flat else {}
        return ids, vision, images, counts if count_image_tokens else None

    def _encode_rows(
        self, prompts: Sequence[ICLPrompt]
    ) -> tuple[list[list[int]], list[list[torch.Tensor]], list[list[Path]], list[list[int]]]:
        """Token ids, image encodings, image paths and image-token counts of each prompt,
        without the processor's per-batch image work: images not cached yet are loaded,
        preprocessed and encoded once (``ImageFeatureCache.features``); each image placeholder
        of the rendered text is expanded into as many image tokens as its encoding has rows (what
        ``LlavaProcessor`` does from the pixel size, and what the model checks), then the texts
        are tokenised in one call. The ids are ``_encode``'s (``tests/lvlm/test_hf_lvlm.py``
        checks it)."""
        texts = [self.render(prompt) for prompt in prompts]
        images = [list(prompt.images) for prompt in prompts]
        flat = self.feature_cache.features([path for row in images for path in row])
        token = self.processor.image_token
        expanded, features, counts, position = [], [], [], 0
        for number, (text, row) in enumerate(zip(texts, images, strict=True)):
            pieces = text.split(token)
            if len(pieces) - 1 != len(row):
                raise ValueError(
                    f"prompt {number}: its rendered text has {len(pieces) - 1} {token} "
                    f"placeholders for {len(row)} images"
                )
            features.append(flat[position : position + len(row)])
            position += len(row)
            sizes = [int(feature.shape[0]) for feature in features[-1]]
            counts.append(sizes)
            out = [pieces[0]]
            for size, piece in zip(sizes, pieces[1:], strict=True):
                out += [token * size, piece]
            expanded.append("".join(out))
        ids = self.tokenizer(expanded)["input_ids"] if expanded else []
        return ids, features, images, counts

    @contextmanager
    def feature_cache_bypassed(self) -> Iterator[None]:
        """Inside the block every pass runs the vision tower and projector on its images
        (nothing read from or written to the image-feature cache): for adapters that read the
        vision tower's patch features, or that need features made outside inference mode."""
        self._feature_cache_bypass += 1
        try:
            yield
        finally:
            self._feature_cache_bypass -= 1

    def _prompt_encoder(self, positions: bool) -> Callable[[Sequence[ICLPrompt]], tuple]:
        """How ``score_inputs`` and generation encode prompts: from the feature cache's image
        encodings for LLaVA (no PNG decoding, preprocessing or vision tower per batch; the
        same ids and encodings), else with the processor (``_encode``)."""
        if self._expands_like_llava and self._uses_cached_features():
            return lambda prompts: self._encode_from_features(prompts, positions)
        return lambda prompts: self._encode(prompts, positions)

    def _padded(
        self,
        sequences: list[list[int]],
        prompt_lengths: list[int],
        counts: list[list[int]] | None,
        left: bool,
        vision: dict[str, Any] | None = None,
    ) -> PaddedBatch:
        """One padded batch of token-id rows for scoring (right padding) or generation
        (``left``): ids, attention mask, Qwen2-VL style ``mm_token_type_ids`` where the model
        takes them, what the processor's ``token_inputs`` derives from the ids and the batch's
        ``vision`` inputs (cross-attention masks), and the visual positions when ``counts``
        (image tokens per image) is given."""
        length = max(len(s) for s in sequences)
        pad = self.tokenizer.pad_token_id or 0
        fills = [length - len(s) for s in sequences]
        if left:
            ids = [[pad] * f + s for s, f in zip(sequences, fills, strict=True)]
            mask = [[0] * f + [1] * len(s) for s, f in zip(sequences, fills, strict=True)]
            starts = fills
        else:
            ids = [s + [pad] * f for s, f in zip(sequences, fills, strict=True)]
            mask = [[1] * len(s) + [0] * f for s, f in zip(sequences, fills, strict=True)]
            starts = [0] * len(sequences)
        visual = (
            None
            if counts is None
            else VisualPositions.of_rows(
                sequences,
                starts,
                prompt_lengths,
                length,
                self.image_token_id,
                counts,
                self.device,
            )
        )
        token_types: dict[str, torch.Tensor] = {}
        if self._token_types:
            types = [self._token_type_ids(s) for s in sequences]
            rows = [[0] * f + t if left else t + [0] * f for t, f in zip(types, fills, strict=True)]
            token_types[self._token_types] = torch.tensor(rows).to(self.device)
        input_ids = torch.tensor(ids).to(self.device)
        if hasattr(self.processor, "token_inputs"):  # cross-attention masks (IDEFICS, Mllama)
            token_types.update(self.processor.token_inputs(input_ids, vision))
        return PaddedBatch(
            input_ids=input_ids,
            attention_mask=torch.tensor(mask).to(self.device),
            token_types=token_types,
            visual=visual,
        )

"""Building the built-in LVLM: LLaVA's recipe at toy scale.

Vision tower: the built-in CLIP's (frozen), every patch token plus CLS as visual tokens
(``vision_feature_select_strategy="full"``: 5 tokens for a 32 px image with 16 px patches).
Projector: LLaVA's two-layer GELU MLP. Language model: a small ``LlamaForCausalLM`` over a
word-level vocabulary. Saved with a ``LlavaProcessor`` whose chat template renders
interleaved conversations, so ``HFLVLM`` loads it like any pretrained LLaVA.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from transformers import (
    CLIPModel,
    CLIPProcessor,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
)

from drum.builtin.tokenizer import build_word_tokenizer
from drum.builtin.world.language import vocabulary

IMAGE_TOKEN = "<image>"
ANSWER_MARKER = ("answer",)
# One user turn = its images then its text; one assistant turn = "answer <reply> [EOS]".
# The generation prompt ends with "answer", so a reply is whatever follows it up to [EOS].
CHAT_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}"
    "{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' %} <image>"
    "{% elif item['type'] == 'text' %} {{ item['text'] }}{% endif -%}"
    "{%- endfor -%}"
    "{%- else %} answer {{ message['content'][0]['text'] }} {{ eos_token }}{% endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt %} answer{% endif -%}"
)


@dataclass(frozen=True)
class BuiltinLVLMArchitecture:
    """Sizes of the built-in LVLM's language model and projector."""

    hidden: int = 128
    layers: int = 4
    heads: int = 4
    intermediate: int = 512
    max_positions: int = 512

    def __post_init__(self) -> None:
        if self.hidden % self.heads:
            raise ValueError("hidden must be a multiple of heads")
        if self.layers < 2:
            raise ValueError("the built-in LVLM needs >= 2 layers (VPG-C hooks a middle one)")


def build_builtin_lvlm(
    architecture: BuiltinLVLMArchitecture,
    embedder_dir: Path,
    words: Iterable[str] | None = None,
) -> tuple[LlavaForConditionalGeneration, LlavaProcessor]:
    """A new LLaVA whose vision tower is the built-in CLIP's (copied; freeze it to train),
    speaking ``words`` (default: the world's vocabulary)."""
    clip = CLIPModel.from_pretrained(embedder_dir)
    clip_processor = CLIPProcessor.from_pretrained(embedder_dir)
    tokenizer = build_word_tokenizer(
        [*(vocabulary() if words is None else words), *ANSWER_MARKER],
        model_max_length=architecture.max_positions,
        wrap_bos_eos=False,
        extra_special_tokens=(IMAGE_TOKEN,),
    )
    vision = clip.config.vision_config
    config = LlavaConfig(
        vision_config=vision.to_dict(),
        text_config=LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=architecture.hidden,
            intermediate_size=architecture.intermediate,
            num_hidden_layers=architecture.layers,
            num_attention_heads=architecture.heads,
            num_key_value_heads=architecture.heads,
            max_position_embeddings=architecture.max_positions,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            tie_word_embeddings=False,
        ).to_dict(),
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        projector_hidden_act="gelu",
    )
    config.text_config.model_type = "llama"
    model = LlavaForConditionalGeneration(config)
    model.model.vision_tower.load_state_dict(clip.vision_model.state_dict())
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    processor = LlavaProcessor(
        image_processor=clip_processor.image_processor,
        tokenizer=tokenizer,
        patch_size=vision.patch_size,
        vision_feature_select_strategy="full",
        num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE,
        image_token=IMAGE_TOKEN,
    )
    return model, processor


def visual_tokens_per_image(model: LlavaForConditionalGeneration) -> int:
    vision = model.config.vision_config
    return (vision.image_size // vision.patch_size) ** 2 + 1

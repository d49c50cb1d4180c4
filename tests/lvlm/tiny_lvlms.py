"""Tiny random LVLMs of real ``transformers`` families, saved to disk for ``HFLVLM`` tests.

Each builder makes a 2-layer, hidden-32/64 model from config (random weights, seeded), a
processor built locally (word-level tokenizer from ``build_word_tokenizer``, the family's own
image processor, a chat template that renders ``ICLPrompt.to_messages()`` with the family's
image placeholder) and saves both with ``save_pretrained``, so ``HFLVLM(path)`` loads them
exactly as it would load a downloaded checkpoint. Images are the tiny world's 32 px PNGs.

Every chat template follows the built-in LVLM's shape: user turns are their parts in order
(" " + the image placeholder, or " " + the text), assistant turns are ``answer <reply> [EOS]``
and the generation prompt ends with ``answer``, so an answer's token ids appended to a
rendered prompt are exactly how the template would render the finished conversation.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch
from transformers import PreTrainedTokenizerFast

from drum.builtin.tokenizer import build_word_tokenizer
from drum.builtin.world.language import vocabulary

MARKERS = ("answer",)
IMAGE_SIZE = 32


class TinyLVLM(NamedTuple):
    """A saved tiny LVLM: its ``model_type``, where it is, how many visual tokens each image
    becomes, what its chat template writes for an image and, for a family that encodes a
    prompt's only image otherwise (LLaVA-OneVision's anyres tiles), how many tokens that
    lone image becomes."""

    model_type: str
    path: Path
    visual_tokens_per_image: int
    placeholder: str
    lone_image_tokens: int | None = None


def chat_template(image: str) -> str:
    """The built-in LVLM's chat template with ``image`` as the per-image placeholder."""
    return (
        "{{- bos_token -}}"
        "{%- for message in messages -%}"
        "{%- if message['role'] == 'user' -%}"
        "{%- for item in message['content'] -%}"
        "{%- if item['type'] == 'image' %} " + image + "{% elif item['type'] == 'text' %} "
        "{{ item['text'] }}{% endif -%}"
        "{%- endfor -%}"
        "{%- else %} answer {{ message['content'][0]['text'] }} {{ eos_token }}{% endif -%}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt %} answer{% endif -%}"
    )


def _tokenizer(special: tuple[str, ...]) -> PreTrainedTokenizerFast:
    return build_word_tokenizer(
        [*vocabulary(), *MARKERS],
        model_max_length=1024,
        wrap_bos_eos=False,
        extra_special_tokens=special,
    )


def _llama_text_config(tokenizer: PreTrainedTokenizerFast, hidden: int = 32) -> dict:
    return {
        "model_type": "llama",
        "vocab_size": len(tokenizer),
        "hidden_size": hidden,
        "intermediate_size": 2 * hidden,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "max_position_embeddings": 1024,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "tie_word_embeddings": False,
    }


def vision_tower(patch: int, **extra: object) -> dict:
    """The tiny vision tower every builder's family starts from (32 wide, 2 layers, 2 heads,
    32 px images, ``patch`` px patches), plus the family's own ``extra`` keys."""
    return {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": IMAGE_SIZE,
        "patch_size": patch,
        **extra,
    }


def mrope_text_config(tokenizer: PreTrainedTokenizerFast, hidden: int, **extra: object) -> dict:
    """A Qwen-VL-style language model config: ``hidden`` wide, 2 layers, M-RoPE sections sized
    for head dim 32 (plus ``extra`` keys)."""
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": hidden,
        "intermediate_size": 2 * hidden,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "max_position_embeddings": 1024,
        # M-RoPE splits head_dim / 2 = 16 rotary frequencies into (t, h, w) sections.
        "rope_parameters": {
            "rope_type": "default",
            "mrope_section": [4, 6, 6],
            "rope_theta": 10000.0,
        },
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        **extra,
    }


def _set_generation_ids(model: torch.nn.Module, tokenizer: PreTrainedTokenizerFast) -> None:
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id


def build_tiny_llava(path: Path, seed: int = 0) -> TinyLVLM:
    """LLaVA: a CLIP vision tower (32 px, 16 px patches) and a Llama, ``"default"`` feature
    selection (the CLS token dropped), so every image is 2 x 2 = 4 visual tokens."""
    from transformers import (
        CLIPImageProcessorPil,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    torch.manual_seed(seed)
    tokenizer = _tokenizer(("<image>",))
    patch = 16
    config = LlavaConfig(
        vision_config=vision_tower(patch, model_type="clip_vision_model", projection_dim=16),
        text_config=_llama_text_config(tokenizer),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        projector_hidden_act="gelu",
    )
    model = LlavaForConditionalGeneration(config)
    _set_generation_ids(model, tokenizer)
    size = {"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessorPil(size=size, crop_size=size),
        tokenizer=tokenizer,
        patch_size=patch,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=chat_template("<image>"),
        image_token="<image>",
    )
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return TinyLVLM("llava", path, (IMAGE_SIZE // patch) ** 2, "<image>")


def build_tiny_idefics3(path: Path, seed: int = 0) -> TinyLVLM:
    """Idefics3 / SmolVLM: a 32 px SigLIP-style tower with 8 px patches (16 patches), pixel
    shuffle by 2 (4 visual tokens per image), no image splitting."""
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessorPil,
        Idefics3Processor,
    )

    torch.manual_seed(seed)
    tokenizer = _tokenizer(
        ("<image>", "<fake_token_around_image>", "<global-img>", "<end_of_utterance>")
    )
    patch, scale = 8, 2
    image_seq_len = (IMAGE_SIZE // patch) ** 2 // scale**2
    config = Idefics3Config(
        vision_config=vision_tower(patch),
        text_config=_llama_text_config(tokenizer),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        scale_factor=scale,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = Idefics3ForConditionalGeneration(config)
    _set_generation_ids(model, tokenizer)
    processor = Idefics3Processor(
        image_processor=Idefics3ImageProcessorPil(
            do_image_splitting=False,
            size={"longest_edge": IMAGE_SIZE},
            max_image_size={"longest_edge": IMAGE_SIZE},
        ),
        tokenizer=tokenizer,
        image_seq_len=image_seq_len,
        chat_template=chat_template("<image>"),
    )
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return TinyLVLM("idefics3", path, image_seq_len, "<image>")


QWEN_SPECIAL_TOKENS = ("<|vision_start|>", "<|image_pad|>", "<|vision_end|>", "<|video_pad|>")


def _build_tiny_qwen(
    path: Path, model_type: str, seed: int, max_pixels: int = IMAGE_SIZE * IMAGE_SIZE
) -> TinyLVLM:
    """Qwen2-VL / Qwen2.5-VL: 8 px patches merged 2 x 2, so a 32 px image is a 4 x 4 patch
    grid and 4 visual tokens; M-RoPE sections sized for head dim 32. ``max_pixels`` above
    32 x 32 lets larger images keep more patches (a grid of their own size).

    ``Qwen2VLProcessor`` cannot be built without torchvision (its video processor needs it),
    so the tokenizer (carrying the chat template) and a ``Qwen2VLImageProcessorPil`` are saved
    side by side; ``HFLVLM`` assembles its image-only Qwen2-VL processor from them.
    """
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessorPil,
    )

    torch.manual_seed(seed)
    tokenizer = _tokenizer(QWEN_SPECIAL_TOKENS)
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in QWEN_SPECIAL_TOKENS}
    patch, merge, hidden = 8, 2, 64
    common_vision = {
        "depth": 2,
        "num_heads": 2,
        "patch_size": patch,
        "spatial_merge_size": merge,
        "temporal_patch_size": 2,
    }
    if model_type == "qwen2_vl":
        config_class, model_class = Qwen2VLConfig, Qwen2VLForConditionalGeneration
        vision = {**common_vision, "embed_dim": 32, "mlp_ratio": 2, "hidden_size": hidden}
    else:
        config_class, model_class = Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
        # Window attention over the whole 32 px image in block 0, full attention in block 1.
        vision = {
            **common_vision,
            "hidden_size": 32,
            "intermediate_size": 64,
            "out_hidden_size": hidden,
            "window_size": IMAGE_SIZE,
            "fullatt_block_indexes": [1],
        }
    config = config_class(
        vision_config=vision,
        text_config=mrope_text_config(tokenizer, hidden),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    model = model_class(config)
    _set_generation_ids(model, tokenizer)
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=IMAGE_SIZE * IMAGE_SIZE,
        max_pixels=max_pixels,
        patch_size=patch,
        merge_size=merge,
    )
    placeholder = "<|vision_start|><|image_pad|><|vision_end|>"
    tokenizer.chat_template = chat_template(placeholder)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    image_processor.save_pretrained(path)
    return TinyLVLM(model_type, path, (IMAGE_SIZE // patch) ** 2 // merge**2, placeholder)


def build_tiny_qwen2_vl(
    path: Path, seed: int = 0, max_pixels: int = IMAGE_SIZE * IMAGE_SIZE
) -> TinyLVLM:
    """Qwen2-VL (see ``_build_tiny_qwen``)."""
    return _build_tiny_qwen(path, "qwen2_vl", seed, max_pixels)


def build_tiny_qwen2_5_vl(
    path: Path, seed: int = 0, max_pixels: int = IMAGE_SIZE * IMAGE_SIZE
) -> TinyLVLM:
    """Qwen2.5-VL (see ``_build_tiny_qwen``): windowed vision attention, same processor."""
    return _build_tiny_qwen(path, "qwen2_5_vl", seed, max_pixels)


def build_tiny_blip2(path: Path, seed: int = 0, patch_size: int = 16) -> TinyLVLM:
    """BLIP-2: a 32 px BLIP vision tower (16 px patches: 4 patches + CLS; ``patch_size=8``:
    16 patches), a 2-layer Q-Former with 4 query tokens and a Llama; every ``<image>`` becomes
    the 4 query tokens' outputs.

    ``Blip2Processor`` prepends all image tokens to the text, so the tokenizer (carrying the
    chat template) and a ``BlipImageProcessorPil`` are saved side by side; ``HFLVLM`` builds
    ``Blip2InterleavedProcessor`` from them."""
    from transformers import Blip2Config, Blip2ForConditionalGeneration, BlipImageProcessorPil

    torch.manual_seed(seed)
    tokenizer = _tokenizer(("<image>",))
    queries = 4
    config = Blip2Config(
        vision_config=vision_tower(patch_size),
        qformer_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "encoder_hidden_size": 32,
            "cross_attention_frequency": 1,
            "vocab_size": len(tokenizer),
        },
        text_config=_llama_text_config(tokenizer),
        num_query_tokens=queries,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
    )
    model = Blip2ForConditionalGeneration(config)
    # Random query tokens (BLIP-2 initialises them to zero: every query would read alike).
    with torch.no_grad():
        model.query_tokens.normal_(std=1.0)
    _set_generation_ids(model, tokenizer)
    tokenizer.chat_template = chat_template("<image>")
    size = {"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    BlipImageProcessorPil(size=size).save_pretrained(path)
    return TinyLVLM("blip-2", path, queries, "<image>")


def _lazy(module: str, name: str) -> Callable[..., TinyLVLM]:
    """``tests.lvlm.<module>.build_tiny_<name>``, imported when first called (the newer
    families' builders live in modules beside this one, which import its helpers); keyword
    options go through to the builder (Qwen3-VL's ``max_pixels``)."""

    def build(path: Path, seed: int = 0, **options: Any) -> TinyLVLM:
        import importlib

        builders = importlib.import_module(f"tests.lvlm.{module}")
        return getattr(builders, f"build_tiny_{name}")(path, seed, **options)

    build.__name__ = f"build_tiny_{name}"
    return build


BUILDERS = {
    "llava": build_tiny_llava,
    "idefics3": build_tiny_idefics3,
    "qwen2_vl": build_tiny_qwen2_vl,
    "qwen2_5_vl": build_tiny_qwen2_5_vl,
    "blip2": build_tiny_blip2,
    **{name: _lazy("tiny_families_a", name) for name in ("qwen3_vl", "gemma3")},
    **{name: _lazy("tiny_families_a", name) for name in ("llava_onevision", "idefics2")},
    **{name: _lazy("tiny_families_b", name) for name in ("internvl", "mistral3")},
    **{name: _lazy("tiny_families_b", name) for name in ("idefics", "mllama")},
}

"""Tiny random Qwen3-VL, Gemma 3, LLaVA-OneVision and Idefics2 models (``tiny_lvlms`` shape).

Each is built from config (2 decoder layers, hidden 32/64, seeded), with a word-level
tokenizer, the family's own PIL image processor and a chat template that renders
``ICLPrompt.to_messages()`` with the family's image placeholder, and saved with
``save_pretrained`` so that ``HFLVLM(path)`` loads it as it would a downloaded checkpoint.
Registered in ``tiny_lvlms.BUILDERS``; every family-parametrized test runs on each.
"""

from __future__ import annotations

from pathlib import Path

import torch

from drum.lvlm.image_only_processor import image_only
from tests.lvlm.tiny_lvlms import (
    IMAGE_SIZE,
    QWEN_SPECIAL_TOKENS,
    TinyLVLM,
    _llama_text_config,
    _set_generation_ids,
    _tokenizer,
    chat_template,
    mrope_text_config,
    vision_tower,
)


def build_tiny_qwen3_vl(
    path: Path, seed: int = 0, max_pixels: int = IMAGE_SIZE * IMAGE_SIZE
) -> TinyLVLM:
    """Qwen3-VL: 8 px patches merged 2 x 2 (4 visual tokens per 32 px image), a deepstack
    merger after vision block 0 (its features added after decoder layer 0), Qwen3 text layers
    with M-RoPE sections for head dim 32. ``max_pixels`` above 32 x 32 lets larger images keep
    more patches (a grid of their own size; the 4 x 4 learned position embeddings are
    resampled to it).

    Like Qwen2-VL, ``Qwen3VLProcessor`` needs torchvision (its video processor), so the
    tokenizer, a ``Qwen2VLImageProcessorPil`` (Qwen3-VL's image processor) and the chat
    template (``chat_template.jinja``) are saved side by side for
    ``Qwen2VLImageOnlyProcessor``."""
    from transformers import (
        Qwen2VLImageProcessorPil,
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
    )

    torch.manual_seed(seed)
    tokenizer = _tokenizer(QWEN_SPECIAL_TOKENS)
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in QWEN_SPECIAL_TOKENS}
    patch, merge, hidden = 8, 2, 64
    config = Qwen3VLConfig(
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "patch_size": patch,
            "spatial_merge_size": merge,
            "temporal_patch_size": 2,
            "out_hidden_size": hidden,
            "num_position_embeddings": (IMAGE_SIZE // patch) ** 2,
            "deepstack_visual_indexes": [0],
        },
        text_config=mrope_text_config(tokenizer, hidden, head_dim=32),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    model = Qwen3VLForConditionalGeneration(config)
    _set_generation_ids(model, tokenizer)
    pixels = IMAGE_SIZE * IMAGE_SIZE
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=pixels, max_pixels=max_pixels, patch_size=patch, merge_size=merge
    )
    placeholder = "<|vision_start|><|image_pad|><|vision_end|>"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    image_processor.save_pretrained(path)
    # Where Qwen3-VL checkpoints keep it: the processor's file, not the tokenizer's config.
    (path / "chat_template.jinja").write_text(chat_template(placeholder), encoding="utf-8")
    return TinyLVLM("qwen3_vl", path, (IMAGE_SIZE // patch) ** 2 // merge**2, placeholder)


GEMMA3_TOKENS = {
    "boi_token": "<start_of_image>",
    "eoi_token": "<end_of_image>",
    "image_token": "<image_soft_token>",
}


def build_tiny_gemma3(path: Path, seed: int = 0) -> TinyLVLM:
    """Gemma 3: a 32 px SigLIP tower with 8 px patches (4 x 4), average-pooled 2 x 2 into
    4 soft tokens per image between ``<start_of_image>`` and ``<end_of_image>``; a sliding
    and a global decoder layer; image tokens attend to each other both ways
    (``token_type_ids``). No pan-and-scan (the tiny world's images are square)."""
    from transformers import (
        Gemma3Config,
        Gemma3ForConditionalGeneration,
        Gemma3ImageProcessorPil,
        Gemma3Processor,
    )

    torch.manual_seed(seed)
    tokenizer = _tokenizer(tuple(GEMMA3_TOKENS.values()))
    # Gemma3Processor reads the tokenizer's named boi / eoi / image tokens.
    tokenizer._set_model_specific_special_tokens(special_tokens=GEMMA3_TOKENS)
    patch, tokens = 8, 4
    config = Gemma3Config(
        vision_config=vision_tower(patch, model_type="siglip_vision_model"),
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 16,
            "query_pre_attn_scalar": 16,
            "sliding_window": 8,  # shorter than the prompts: the sliding layer's mask matters
            "layer_types": ["sliding_attention", "full_attention"],
            "max_position_embeddings": 1024,
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        },
        mm_tokens_per_image=tokens,
        boi_token_index=tokenizer.boi_token_id,
        eoi_token_index=tokenizer.convert_tokens_to_ids(GEMMA3_TOKENS["eoi_token"]),
        image_token_index=tokenizer.image_token_id,
    )
    model = Gemma3ForConditionalGeneration(config)
    _set_generation_ids(model, tokenizer)
    processor = Gemma3Processor(
        image_processor=Gemma3ImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}),
        tokenizer=tokenizer,
        image_seq_length=tokens,
        chat_template=chat_template(GEMMA3_TOKENS["boi_token"]),
    )
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return TinyLVLM("gemma3", path, tokens, GEMMA3_TOKENS["boi_token"])


def build_tiny_llava_onevision(path: Path, seed: int = 0) -> TinyLVLM:
    """LLaVA-OneVision: a 32 px SigLIP tower with 16 px patches (2 x 2 per tile) and a Qwen2.

    A prompt's only image goes through anyres: the base tile (4 tokens), then the best-fitting
    grid of tiles (here one 32 px tile: 4 tokens) with a newline token after each row of it
    (2), 10 tokens; each image of a multi-image prompt is its base tile and one newline, 5.

    ``LlavaOnevisionProcessor`` needs torchvision (its video processor), so it is saved
    without one and rebuilt image-only (``drum.lvlm.image_only_processor``)."""
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessorPil,
        LlavaOnevisionProcessor,
    )

    torch.manual_seed(seed)
    tokenizer = _tokenizer(("<image>", "<video>"))
    patch = 16
    per_tile = (IMAGE_SIZE // patch) ** 2
    pinpoints = [
        [IMAGE_SIZE, IMAGE_SIZE],
        [IMAGE_SIZE, 2 * IMAGE_SIZE],
        [2 * IMAGE_SIZE, IMAGE_SIZE],
    ]
    text = {**_llama_text_config(tokenizer), "model_type": "qwen2"}
    config = LlavaOnevisionConfig(
        vision_config=vision_tower(patch, model_type="siglip_vision_model"),
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        video_token_index=tokenizer.convert_tokens_to_ids("<video>"),
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        image_grid_pinpoints=pinpoints,
    )
    model = LlavaOnevisionForConditionalGeneration(config)
    _set_generation_ids(model, tokenizer)
    processor = image_only(LlavaOnevisionProcessor)(
        image_processor=LlavaOnevisionImageProcessorPil(
            size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, image_grid_pinpoints=pinpoints
        ),
        tokenizer=tokenizer,
        num_image_tokens=per_tile,
        vision_feature_select_strategy="full",
        chat_template=chat_template("<image>"),
    )
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return TinyLVLM("llava_onevision", path, per_tile + 1, "<image>", 2 * per_tile + 2)


def build_tiny_idefics2(path: Path, seed: int = 0) -> TinyLVLM:
    """Idefics2: a 32 px SigLIP-style tower with 8 px patches (16 patches), a perceiver
    resampler of 4 latents (4 visual tokens per image between ``<fake_token_around_image>``),
    no image splitting; a 32 px square stays as it is, a 64 x 32 image becomes 32 x 16 (padded
    to its batch's largest, with a pixel mask)."""
    from transformers import (
        Idefics2Config,
        Idefics2ForConditionalGeneration,
        Idefics2ImageProcessorPil,
        Idefics2Processor,
    )

    torch.manual_seed(seed)
    tokenizer = _tokenizer(("<fake_token_around_image>", "<image>", "<end_of_utterance>"))
    latents = 4
    config = Idefics2Config(
        vision_config=vision_tower(8),
        perceiver_config={
            "hidden_size": 32,
            "resampler_n_latents": latents,
            "resampler_depth": 1,
            "resampler_n_heads": 2,
            "resampler_head_dim": 16,
            "num_key_value_heads": 1,
        },
        text_config=_llama_text_config(tokenizer),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
    )
    model = Idefics2ForConditionalGeneration(config)
    # Random latents (Idefics2 initialises them to one: every latent would read alike), and
    # text-layer weights ten times the default scale: at 0.02 the RMS-normed visual tokens
    # swamp what the layers add and every prompt gets the same greedy reply.
    with torch.no_grad():
        model.model.connector.perceiver_resampler.latents.normal_(std=1.0)
        for name, weight in model.model.text_model.named_parameters():
            if weight.dim() == 2 and "embed" not in name:
                weight.normal_(std=0.2)
    _set_generation_ids(model, tokenizer)
    processor = Idefics2Processor(
        image_processor=Idefics2ImageProcessorPil(
            do_image_splitting=False,
            size={"shortest_edge": IMAGE_SIZE // 2, "longest_edge": IMAGE_SIZE},
        ),
        tokenizer=tokenizer,
        image_seq_len=latents,
        chat_template=chat_template("<image>"),
    )
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return TinyLVLM("idefics2", path, latents, "<image>")

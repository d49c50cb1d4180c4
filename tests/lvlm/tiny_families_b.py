"""Tiny random InternVL, Mistral3, IDEFICS (v1) and Mllama models for the ``HFLVLM`` tests.

Built as ``tiny_lvlms``' builders are (2 decoder layers, hidden 32, random seeded weights,
the word-level tokenizer, the family's own Pil image processor, the built-in LVLM's chat
template with the family's image placeholder) and registered in ``tiny_lvlms.BUILDERS``.
Images are the tiny world's 32 px PNGs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from tests.lvlm.tiny_lvlms import (
    IMAGE_SIZE,
    TinyLVLM,
    _llama_text_config,
    _set_generation_ids,
    _tokenizer,
    chat_template,
    vision_tower,
)

INTERNVL_TOKENS = ("<IMG_CONTEXT>", "<img>", "</img>", "<video>")


def build_tiny_internvl(path: Path, seed: int = 0) -> TinyLVLM:
    """InternVL: a 32 px InternViT-style tower with 8 px patches (16 patches + CLS, the CLS
    dropped), pixel shuffle by 2 (4 visual tokens per tile) and a Llama. Every 32 px image is
    one tile (``crop_to_patches`` picks the 1 x 1 grid for a square image no larger than a
    tile).

    ``InternVLProcessor`` cannot be built without torchvision (its video processor needs it),
    so the tokenizer (carrying the chat template) and a ``GotOcr2ImageProcessorPil`` are saved
    side by side; ``HFLVLM`` builds ``InternVLImageOnlyProcessor`` from them."""
    from transformers import (
        GotOcr2ImageProcessorPil,
        InternVLConfig,
        InternVLForConditionalGeneration,
    )

    torch.manual_seed(seed)
    tokenizer = _tokenizer(INTERNVL_TOKENS)
    patch, ratio = 8, 0.5
    seq_length = int((IMAGE_SIZE // patch) ** 2 * ratio**2)
    config = InternVLConfig(
        vision_config=vision_tower(patch),
        text_config=_llama_text_config(tokenizer),
        image_token_id=tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>"),
        image_seq_length=seq_length,
        downsample_ratio=ratio,
        tie_word_embeddings=False,
    )
    model = InternVLForConditionalGeneration(config)
    _set_generation_ids(model, tokenizer)
    tokenizer.chat_template = chat_template("<IMG_CONTEXT>")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    size = {"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    GotOcr2ImageProcessorPil(size=size).save_pretrained(path)
    return TinyLVLM("internvl", path, seq_length, "<IMG_CONTEXT>")


PIXTRAL_TOKENS = ("[IMG]", "[IMG_BREAK]", "[IMG_END]")


def build_tiny_mistral3(path: Path, seed: int = 0) -> TinyLVLM:
    """Mistral3 (Mistral Small 3.1 style): a 32 px Pixtral tower with 8 px patches (a 4 x 4
    grid), the patch merger joining 2 x 2 patches, so an image is 2 rows of 2 visual tokens:
    ``[IMG][IMG][IMG_BREAK][IMG][IMG][IMG_END]`` (its span holds the row break).

    ``PixtralProcessor`` refuses to be built without torchvision, so the tokenizer (carrying
    the chat template) and a ``PixtralImageProcessorPil`` are saved side by side; ``HFLVLM``
    builds ``PixtralImageOnlyProcessor`` from them and the model's config."""
    from transformers import (
        Mistral3Config,
        Mistral3ForConditionalGeneration,
        PixtralImageProcessorPil,
    )

    torch.manual_seed(seed)
    tokenizer = _tokenizer(PIXTRAL_TOKENS)
    patch, merge = 8, 2
    config = Mistral3Config(
        vision_config=vision_tower(patch, model_type="pixtral", head_dim=16),
        text_config=_llama_text_config(tokenizer),
        image_token_index=tokenizer.convert_tokens_to_ids("[IMG]"),
        spatial_merge_size=merge,
        vision_feature_layer=-1,
        tie_word_embeddings=False,
    )
    model = Mistral3ForConditionalGeneration(config)
    _set_generation_ids(model, tokenizer)
    tokenizer.chat_template = chat_template("[IMG]")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    PixtralImageProcessorPil(
        size={"longest_edge": IMAGE_SIZE}, patch_size={"height": patch, "width": patch}
    ).save_pretrained(path)
    return TinyLVLM("mistral3", path, (IMAGE_SIZE // (patch * merge)) ** 2, "[IMG]")


IDEFICS_TOKENS = ("<image>", "<fake_token_around_image>")
IDEFICS_PLACEHOLDER = "<fake_token_around_image><image><fake_token_around_image>"


def build_tiny_idefics(path: Path, seed: int = 0) -> TinyLVLM:
    """IDEFICS (v1): a 32 px CLIP-style tower (16 px patches), a 1-layer perceiver resampler
    with 4 latents, and 2 decoder layers each preceded by a gated cross-attention layer
    (``cross_layer_interval=1``) whose gates start random (IDEFICS starts them at zero, which
    would make a random tiny model blind). The chat template writes each image as
    ``<fake_token_around_image><image><fake_token_around_image>``: one ``<image>`` token, the
    image's whole span in the sequence.

    The tokenizer (carrying the chat template) and an ``IdeficsImageProcessorPil`` are saved
    side by side; ``HFLVLM`` builds ``IdeficsInterleavedProcessor`` from them."""
    from transformers import IdeficsConfig, IdeficsForVisionText2Text, IdeficsImageProcessorPil

    torch.manual_seed(seed)
    tokenizer = _tokenizer(IDEFICS_TOKENS)
    text = _llama_text_config(tokenizer)
    config = IdeficsConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=1024,
        cross_layer_interval=1,
        use_resampler=True,
        alpha_initializer="normal",
        alpha_type="vector",  # "float" with "normal" trips a transformers bug (torch.normal size)
        alphas_initializer_range=1.0,
        vision_config={
            "embed_dim": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": IMAGE_SIZE,
            "patch_size": 16,
        },
        perceiver_config={
            "use_resampler": True,
            "resampler_n_latents": 4,
            "resampler_depth": 1,
            "resampler_n_heads": 2,
            "resampler_head_dim": 16,
        },
        pad_token_id=text["pad_token_id"],
        bos_token_id=text["bos_token_id"],
        eos_token_id=text["eos_token_id"],
        tie_word_embeddings=False,
    )
    model = IdeficsForVisionText2Text(config)
    _set_generation_ids(model, tokenizer)
    tokenizer.chat_template = chat_template(IDEFICS_PLACEHOLDER)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    IdeficsImageProcessorPil(image_size=IMAGE_SIZE).save_pretrained(path)
    return TinyLVLM("idefics", path, 1, IDEFICS_PLACEHOLDER)


def build_tiny_mllama(
    path: Path, seed: int = 0, num_layers: int = 3, cross_attention_layers: Sequence[int] = (1,)
) -> TinyLVLM:
    """Mllama (Llama 3.2 Vision): a 32 px tiled vision tower (16 px patches, up to 2 tiles,
    one global layer) and 3 decoder layers, the second a cross-attention layer
    (``cross_attention_layers=[1]``) whose gates start open (Mllama starts them at zero,
    which would make a random tiny model blind). Each image is one ``<|image|>`` token, the
    image's whole span in the sequence. ``num_layers`` and ``cross_attention_layers`` give
    other layouts (VPG-C's tests want cross-attention layers on both sides of its layer).

    The tokenizer (carrying the chat template) and a ``MllamaImageProcessorPil`` are saved
    side by side; ``HFLVLM`` builds ``MllamaInterleavedProcessor`` from them."""
    from transformers import MllamaConfig, MllamaForConditionalGeneration, MllamaImageProcessorPil

    torch.manual_seed(seed)
    tokenizer = _tokenizer(("<|image|>",))
    text = _llama_text_config(tokenizer)
    tiles, hidden, intermediate_layers = 2, 32, [0]
    config = MllamaConfig(
        vision_config={
            "hidden_size": hidden,
            "intermediate_size": 2 * hidden,
            "num_hidden_layers": 2,
            "num_global_layers": 1,
            "attention_heads": 2,
            "image_size": IMAGE_SIZE,
            "patch_size": 16,
            "max_num_tiles": tiles,
            "intermediate_layers_indices": intermediate_layers,
            "vision_output_dim": hidden * (len(intermediate_layers) + 1),
            # The image processor's order for max_image_tiles=2 (ids count from 1).
            "supported_aspect_ratios": [[1, 1], [1, 2], [2, 1]],
        },
        text_config={
            **{k: v for k, v in text.items() if k != "model_type"},
            # self-attention, cross-attention, self-attention: what a hook writes at an
            # <|image|> token before the cross-attention layer (which mixes no tokens) reaches
            # the later tokens through the last layer.
            "num_hidden_layers": num_layers,
            "cross_attention_layers": list(cross_attention_layers),
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
        },
        image_token_index=tokenizer.convert_tokens_to_ids("<|image|>"),
    )
    model = MllamaForConditionalGeneration(config)
    with torch.no_grad():
        for layer in model.model.language_model.layers:
            for name in ("cross_attn_attn_gate", "cross_attn_mlp_gate"):
                if hasattr(layer, name):
                    getattr(layer, name).fill_(1.0)
    _set_generation_ids(model, tokenizer)
    tokenizer.chat_template = chat_template("<|image|>")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    size = {"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    MllamaImageProcessorPil(size=size, max_image_tiles=tiles).save_pretrained(path)
    return TinyLVLM("mllama", path, 1, "<|image|>")

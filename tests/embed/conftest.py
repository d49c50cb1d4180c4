"""Fixtures of the embedder tests: a tiny random SigLIP 2 built from config."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_siglip2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised tiny Siglip2Model + its Pil image processor and a local word
    tokenizer, saved with save_pretrained. Patches of 8 pixels, at most 16 per image, so that
    images of different aspect ratios get different patch grids (``spatial_shapes``)."""
    import torch
    from transformers import (
        Siglip2Config,
        Siglip2ImageProcessorPil,
        Siglip2Model,
        Siglip2Processor,
    )

    from drum.builtin.tokenizer import build_word_tokenizer
    from drum.builtin.world.language import vocabulary

    torch.manual_seed(0)
    tokenizer = build_word_tokenizer(vocabulary(), model_max_length=16)
    common = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
    }
    config = Siglip2Config(
        text_config={
            **common,
            "vocab_size": len(tokenizer),
            "max_position_embeddings": 16,
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        },
        vision_config={**common, "patch_size": 8, "num_patches": 16},
    )
    processor = Siglip2Processor(
        image_processor=Siglip2ImageProcessorPil(patch_size=8, max_num_patches=16),
        tokenizer=tokenizer,
    )
    path = tmp_path_factory.mktemp("tiny_siglip2")
    Siglip2Model(config).save_pretrained(path)
    processor.save_pretrained(path)
    return path

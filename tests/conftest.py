"""Session-wide fixtures: a tiny world and tiny Hugging Face dual encoders (CLIP, SigLIP,
SigLIP 2) built from config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

TINY_WORLD_KWARGS = {"n_train": 240, "n_pool": 60, "n_val": 24, "n_test": 24}


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from drum.builtin.world.generate import WorldConfig, make_world

    return make_world(
        tmp_path_factory.mktemp("world") / "world", WorldConfig(**TINY_WORLD_KWARGS), progress=False
    )


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised tiny CLIPModel + processor saved with save_pretrained."""
    import torch

    from drum.builtin.embedder import BuiltinEmbedderConfig, build_clip
    from drum.builtin.world.language import vocabulary

    torch.manual_seed(0)
    config = BuiltinEmbedderConfig(
        vision_hidden=32, vision_layers=2, vision_heads=2, text_hidden=32, projection_dim=16
    )
    model, processor = build_clip(config, vocabulary())
    path = tmp_path_factory.mktemp("tiny_clip")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_siglip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised tiny SiglipModel + processor saved with save_pretrained."""
    import torch
    from transformers import SiglipConfig, SiglipImageProcessorPil, SiglipModel, SiglipProcessor

    from drum.builtin.tokenizer import build_word_tokenizer
    from drum.builtin.world.language import vocabulary

    torch.manual_seed(0)
    tokenizer = build_word_tokenizer(vocabulary(), model_max_length=16)
    common = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2}
    config = SiglipConfig(
        text_config={
            **common,
            "num_attention_heads": 2,
            "vocab_size": len(tokenizer),
            "max_position_embeddings": 16,
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        },
        vision_config={**common, "num_attention_heads": 2, "image_size": 32, "patch_size": 16},
    )
    processor = SiglipProcessor(
        image_processor=SiglipImageProcessorPil(size={"height": 32, "width": 32}),
        tokenizer=tokenizer,
    )
    path = tmp_path_factory.mktemp("tiny_siglip")
    SiglipModel(config).save_pretrained(path)
    processor.save_pretrained(path)
    return path


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


@pytest.fixture(scope="session")
def tiny_llava_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random LLaVA (``tests/lvlm/tiny_lvlms.py``) saved with save_pretrained."""
    from tests.lvlm.tiny_lvlms import build_tiny_llava

    return build_tiny_llava(tmp_path_factory.mktemp("tiny_llava")).path


@pytest.fixture(scope="session")
def image_paths(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Twelve 4 x 4 PNGs of distinct colours (``tests.multi_image.multi_image_pool`` groups
    them into examples of one to three images)."""
    from PIL import Image

    directory = tmp_path_factory.mktemp("images")
    paths = []
    for i in range(12):
        paths.append(directory / f"{i}.png")
        Image.new("RGB", (4, 4), (20 * i, 255 - 20 * i, 7)).save(paths[-1])
    return paths

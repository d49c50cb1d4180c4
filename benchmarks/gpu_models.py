"""The architectures ``bench_gpu.py`` times, built from config with random weights.

Real sizes (speed does not depend on the weights' values) or tiny ones (``smoke``: hidden 32,
2 layers, 32 px images, for the CPU test that keeps the script from rotting):

- ``clip``: CLIP ViT-L/14 at 224 px (``openai/clip-vit-large-patch14``'s shapes), 257 vision
  tokens an image;
- ``siglip``: SigLIP so400m/14 at 384 px (``google/siglip-so400m-patch14-384``), 729 tokens;
- ``llava``: LLaVA-1.5-7B (CLIP ViT-L/14-336 + a 2-layer GELU projector + Vicuna-7B, vocabulary
  32,064): 336 px images, 576 visual tokens each;
- ``qwen``: Qwen2.5-VL-7B (32-block windowed ViT, 14 px patches merged 2 x 2, Qwen2-7B LLM,
  GQA 28/4 heads, vocabulary 152,064): images at 448 x 448 px, 1,024 patches, 256 visual tokens;
- ``blip2``: BLIP-2 with ViT-g/14 (39 layers, 224 px), a 12-layer Q-Former with 32 queries and
  a Vicuna-7B (Llama) language model, the shape VPG-C was built on; 32 visual tokens an image.

Weights are made where they will run, in the benchmark's dtype (``_from_config`` under a
``torch.device`` context: no float32 copy on the CPU, no 15 GB written to disk and read back).
DRUM's loaders read a directory, so ``build`` saves there what they read besides the weights
(config, processor, tokenizer with a chat template, all made locally: a word-level tokenizer
padded with filler words to the real vocabulary size, the family's PIL image processor at the
real resolution), and ``prebuilt`` makes ``from_pretrained`` hand back the model built here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from drum.builtin.lvlm.model import CHAT_TEMPLATE, IMAGE_TOKEN
from drum.builtin.tokenizer import SPECIAL_TOKENS, build_word_tokenizer
from drum.builtin.world.language import vocabulary

QWEN_TOKENS = ("<|vision_start|>", "<|image_pad|>", "<|vision_end|>", "<|video_pad|>")
QWEN_PLACEHOLDER = "<|vision_start|><|image_pad|><|vision_end|>"


@dataclass(frozen=True)
class Built:
    """A model built on its device and the directory DRUM's loaders read (config, processor).

    ``vision_tower``: the module whose forward encodes images (timed FLOPs are counted on it);
    ``tokens_per_image``: tokens one image is inside that tower (``pixel_values`` rows for
    Qwen's flattened patches); ``visual_tokens``: what one image becomes in the LLM's input."""

    name: str
    title: str
    description: str
    model: torch.nn.Module
    directory: Path
    image_size: int
    vision_tower: torch.nn.Module
    tokens_per_image: int
    visual_tokens: int


def _llama(vocab: int, smoke: bool) -> dict[str, Any]:
    """Vicuna-7B's Llama shapes (LLaVA-1.5, BLIP-2 / InstructBLIP-Vicuna), or a tiny one."""
    hidden, layers, inter = (32, 2, 64) if smoke else (4096, 32, 11008)
    return {
        "model_type": "llama",
        "vocab_size": vocab,
        "hidden_size": hidden,
        "intermediate_size": inter,
        "num_hidden_layers": layers,
        "num_attention_heads": 2 if smoke else 32,
        "num_key_value_heads": 2 if smoke else 32,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False,
    }


def _encoder(smoke: bool, hidden: int, inter: int, layers: int, heads: int) -> dict[str, Any]:
    """A transformer encoder's sizes (vision tower, text tower, Q-Former), or tiny ones."""
    if smoke:
        return {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
        }
    return {
        "hidden_size": hidden,
        "intermediate_size": inter,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
    }


def word_tokenizer(size: int | None, special: tuple[str, ...] = (), max_length: int = 4096) -> Any:
    """The world's words (+ ``"answer"``, the chat template's marker), padded with filler words
    to ``size`` entries (the real vocabulary: generation may pick any id and decode it)."""
    words = [*vocabulary(), "answer"]
    if size is not None:
        fill = size - len(words) - len(SPECIAL_TOKENS) - len(special)
        words += [f"filler{i:06d}" for i in range(fill)]
    return build_word_tokenizer(
        words, model_max_length=max_length, wrap_bos_eos=False, extra_special_tokens=special
    )


def _ids(tokenizer: Any) -> dict[str, int]:
    return {
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }


def _instantiate(model_class: Any, config: Any, device: str, dtype: torch.dtype) -> Any:
    """``model_class(config)`` with its weights created on ``device`` in ``dtype``."""
    with torch.device(device):
        model = model_class._from_config(config, dtype=dtype)
    return model.eval()


def _embedder(name: str, smoke: bool, device: str, dtype: torch.dtype, directory: Path) -> Built:
    from transformers import (
        CLIPConfig,
        CLIPImageProcessorPil,
        CLIPModel,
        CLIPProcessor,
        SiglipConfig,
        SiglipImageProcessorPil,
        SiglipModel,
        SiglipProcessor,
    )

    # Only images are embedded here: the text tower is built at its real size but its
    # tokenizer is the small word-level one (no text is timed).
    if name == "clip":
        size, patch = (32, 16) if smoke else (224, 14)
        tokenizer = word_tokenizer(None, max_length=77)
        text = {
            **_encoder(smoke, 768, 3072, 12, 12),
            "vocab_size": 49408 if not smoke else len(tokenizer),
            "max_position_embeddings": 77,
            **_ids(tokenizer),
        }
        vision = {**_encoder(smoke, 1024, 4096, 24, 16), "image_size": size, "patch_size": patch}
        config = CLIPConfig(
            text_config=text, vision_config=vision, projection_dim=16 if smoke else 768
        )
        model = _instantiate(CLIPModel, config, device, dtype)
        crop = {"height": size, "width": size}
        processor = CLIPProcessor(
            CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size=crop), tokenizer
        )
        title, description = "CLIP ViT-L/14", "CLIP ViT-L/14, 224 px"
    else:
        size, patch = (32, 16) if smoke else (384, 14)
        tokenizer = word_tokenizer(None, max_length=64)
        common = _encoder(smoke, 1152, 4304, 27, 16)
        text = {
            **common,
            "vocab_size": 32000 if not smoke else len(tokenizer),
            "max_position_embeddings": 64,
            **_ids(tokenizer),
        }
        config = SiglipConfig(
            text_config=text,
            vision_config={**common, "image_size": size, "patch_size": patch},
        )
        model = _instantiate(SiglipModel, config, device, dtype)
        processor = SiglipProcessor(
            SiglipImageProcessorPil(size={"height": size, "width": size}), tokenizer
        )
        title, description = "SigLIP so400m", "SigLIP so400m/14, 384 px"
    model.config.save_pretrained(directory)
    processor.save_pretrained(directory)
    tokens = (size // patch) ** 2 + (1 if name == "clip" else 0)  # CLIP adds a CLS token
    return Built(
        name, title, description, model, directory, size, model.vision_model, tokens, tokens
    )


def _llava(smoke: bool, device: str, dtype: torch.dtype, directory: Path) -> Built:
    from transformers import (
        CLIPImageProcessorPil,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    size, patch = (32, 16) if smoke else (336, 14)
    tokenizer = word_tokenizer(None if smoke else 32064, (IMAGE_TOKEN,))
    vision = {
        **_encoder(smoke, 1024, 4096, 24, 16),
        "model_type": "clip_vision_model",
        "image_size": size,
        "patch_size": patch,
        "projection_dim": 16 if smoke else 768,
    }
    config = LlavaConfig(
        vision_config=vision,
        text_config={**_llama(len(tokenizer), smoke), **_ids(tokenizer)},
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        vision_feature_select_strategy="default",  # the CLS token dropped: 24 x 24 = 576
        vision_feature_layer=-2,
        projector_hidden_act="gelu",
    )
    model = _instantiate(LlavaForConditionalGeneration, config, device, dtype)
    crop = {"height": size, "width": size}
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessorPil(size=crop, crop_size=crop),
        tokenizer=tokenizer,
        patch_size=patch,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE,
        image_token=IMAGE_TOKEN,
    )
    _save_lvlm(model, tokenizer, directory, processor)
    grid = (size // patch) ** 2
    tower = model.model.vision_tower
    description = "CLIP ViT-L/14-336 + MLP projector + Vicuna-7B, 336 px"
    return Built(
        "llava", "LLaVA-1.5-7B", description, model, directory, size, tower, grid + 1, grid
    )


def _qwen(smoke: bool, device: str, dtype: torch.dtype, directory: Path) -> Built:
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2VLImageProcessorPil,
    )

    size, patch, merge = (32, 8, 2) if smoke else (448, 14, 2)
    tokenizer = word_tokenizer(None if smoke else 152064, QWEN_TOKENS)
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in QWEN_TOKENS}
    if smoke:
        vision = {
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": 64,
            "window_size": size,
            "fullatt_block_indexes": [1],
        }
        text = {
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
        }
        mrope = [4, 6, 6]  # head dim 32: 16 rotary frequencies split (t, h, w)
    else:
        vision = {
            "depth": 32,
            "hidden_size": 1280,
            "intermediate_size": 3420,
            "num_heads": 16,
            "out_hidden_size": 3584,
            "window_size": 112,
            "fullatt_block_indexes": [7, 15, 23, 31],
        }
        text = {
            "hidden_size": 3584,
            "intermediate_size": 18944,
            "num_hidden_layers": 28,
            "num_attention_heads": 28,
            "num_key_value_heads": 4,
        }
        mrope = [16, 24, 24]  # head dim 128
    config = Qwen2_5_VLConfig(
        vision_config={
            **vision,
            "patch_size": patch,
            "spatial_merge_size": merge,
            "temporal_patch_size": 2,
        },
        text_config={
            **text,
            "vocab_size": len(tokenizer),
            "max_position_embeddings": 32768,
            "rms_norm_eps": 1e-6,
            "tie_word_embeddings": False,
            "rope_parameters": {
                "rope_type": "default",
                "mrope_section": mrope,
                "rope_theta": 1000000.0,
            },
            **_ids(tokenizer),
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    model = _instantiate(Qwen2_5_VLForConditionalGeneration, config, device, dtype)
    # Fixed resolution: every image is resized to exactly size x size.
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=size * size, max_pixels=size * size, patch_size=patch, merge_size=merge
    )
    tokenizer.chat_template = CHAT_TEMPLATE.replace(IMAGE_TOKEN, QWEN_PLACEHOLDER)
    _save_lvlm(model, tokenizer, directory, image_processor)
    patches = (size // patch) ** 2
    description = "Qwen2.5-VL-7B (windowed ViT, Qwen2-7B LLM), 448 x 448 px"
    return Built(
        "qwen",
        "Qwen2.5-VL-7B",
        description,
        model,
        directory,
        size,
        model.model.visual,
        patches,
        patches // merge**2,
    )


def _blip2(smoke: bool, device: str, dtype: torch.dtype, directory: Path) -> Built:
    from transformers import Blip2Config, Blip2ForConditionalGeneration, BlipImageProcessorPil

    size, patch, queries = (32, 16, 4) if smoke else (224, 14, 32)
    tokenizer = word_tokenizer(None if smoke else 32001, (IMAGE_TOKEN,))
    vision = {**_encoder(smoke, 1408, 6144, 39, 16), "image_size": size, "patch_size": patch}
    qformer = {
        **_encoder(smoke, 768, 3072, 12, 12),
        "encoder_hidden_size": vision["hidden_size"],
        "cross_attention_frequency": 1 if smoke else 2,
        "vocab_size": len(tokenizer) if smoke else 30522,
    }
    config = Blip2Config(
        vision_config=vision,
        qformer_config=qformer,
        text_config={**_llama(len(tokenizer), smoke), **_ids(tokenizer)},
        num_query_tokens=queries,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
    )
    model = _instantiate(Blip2ForConditionalGeneration, config, device, dtype)
    with torch.no_grad():  # BLIP-2 starts its queries at zero: every query would read alike
        model.query_tokens.normal_(std=0.02)
    tokenizer.chat_template = CHAT_TEMPLATE
    image_processor = BlipImageProcessorPil(size={"height": size, "width": size})
    _save_lvlm(model, tokenizer, directory, image_processor)
    tokens = (size // patch) ** 2 + 1
    description = "BLIP-2: ViT-g/14 + Q-Former (32 queries) + Vicuna-7B, 224 px"
    return Built(
        "blip2",
        "BLIP-2 Vicuna-7B",
        description,
        model,
        directory,
        size,
        model.vision_model,
        tokens,
        queries,
    )


def _save_lvlm(model: Any, tokenizer: Any, directory: Path, processor: Any) -> None:
    for attribute, value in _ids(tokenizer).items():
        setattr(model.generation_config, attribute, value)
    model.config.save_pretrained(directory)
    model.generation_config.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    processor.save_pretrained(directory)


NAMES = ("clip", "siglip", "llava", "qwen", "blip2")


def build(name: str, smoke: bool, device: str, dtype: torch.dtype, directory: Path) -> Built:
    """Architecture ``name`` (``NAMES``) with random weights on ``device`` in ``dtype``, and
    its config and processor saved in ``directory`` (seeded: the same weights every run)."""
    torch.manual_seed(0)
    directory.mkdir(parents=True, exist_ok=True)
    if name in ("clip", "siglip"):
        built = _embedder(name, smoke, device, dtype, directory)
    else:
        builder = {"llava": _llava, "qwen": _qwen, "blip2": _blip2}[name]
        built = builder(smoke, device, dtype, directory)
    if smoke:
        return replace(built, title=built.title + " (tiny)", description="tiny " + name)
    return built


@contextmanager
def prebuilt(auto_class: Any, model: torch.nn.Module) -> Iterator[None]:
    """Inside the block ``auto_class.from_pretrained(...)`` returns ``model``: DRUM's loaders
    (``HFDualEncoder``, ``HFLVLM``) then read only the config and processor from their
    directory and run on the weights built here."""
    original = auto_class.__dict__["from_pretrained"]  # transformers sets it on each class
    auto_class.from_pretrained = staticmethod(lambda *args, **kwargs: model)
    try:
        yield
    finally:
        auto_class.from_pretrained = original


def make_images(directory: Path, count: int, size: int, seed: int = 0) -> list[Path]:
    """``count`` distinct ``size`` px PNGs of random 8 x 8 px blocks (decoding and resizing
    them costs what a photo of that size costs; their content does not matter)."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        blocks = rng.integers(0, 256, size=(-(-size // 8), -(-size // 8), 3), dtype=np.uint8)
        image = Image.fromarray(blocks).resize((size, size), Image.NEAREST)
        paths.append(directory / f"{size}px-{index:04d}.png")
        image.save(paths[-1])
    return paths


def parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def language_parameters(built: Built) -> int:
    """The parameters a text token's forward multiplies by: all but the vision side (tower,
    projector or Q-Former) and the input embedding table (a lookup, no multiply)."""
    model = built.model
    language = getattr(model, "language_model", None) or model.model.language_model
    count = parameters(language) - parameters(model.get_input_embeddings())
    if model.get_output_embeddings() not in set(language.modules()):
        count += parameters(model.get_output_embeddings())  # the LM head beside the decoder
    return count

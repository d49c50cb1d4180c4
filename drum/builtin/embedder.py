"""The built-in embedder: a tiny ``CLIPModel`` trained from scratch on the built-in world.

It is saved with ``save_pretrained`` beside a locally built processor (word-level tokenizer,
``CLIPImageProcessorPil``), so ``HFDualEncoder`` loads it exactly as it loads a pretrained
CLIP from the hub, and DRUM later fine-tunes it through the same code.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor

from drum.builtin.tokenizer import build_word_tokenizer
from drum.builtin.world.generate import load_world_card, world_identity
from drum.builtin.world.language import vocabulary
from drum.builtin.world.scene import COLOURS, COUNTS, SHAPES, SIZES, Scene
from drum.data.images import load_image
from drum.data.jsonl import read_examples
from drum.losses.contrastive import multi_positive_contrastive_loss
from drum.utils.checkpoint import Checkpointer
from drum.utils.schedule import adamw_warmup_cosine, clipped_step
from drum.utils.seed import seed_everything
from drum.utils.train_loop import LoopConfig, run_training

CARD_NAME = "drum_embedder.json"
CHECKPOINT_EVERY = 250  # steps; a full run is 1500
# The world's images are small; CLIP's ImageNet statistics are kept so that the processor is
# the stock one a user would get.
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


@dataclass(frozen=True)
class BuiltinEmbedderConfig:
    """Architecture and training recipe of the built-in CLIP."""

    image_size: int = 32
    patch_size: int = 16
    vision_hidden: int = 128
    vision_layers: int = 4
    vision_heads: int = 4
    text_hidden: int = 64
    text_layers: int = 2
    text_heads: int = 2
    projection_dim: int = 64
    max_text_length: int = 24
    steps: int = 1500
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError("image_size must be a multiple of patch_size")
        for name in ("steps", "batch_size", "vision_layers", "text_layers", "projection_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"BuiltinEmbedderConfig.{name} must be >= 1")


def build_clip(config: BuiltinEmbedderConfig, words: list[str]) -> tuple[CLIPModel, CLIPProcessor]:
    """A randomly initialised tiny ``CLIPModel`` and its locally built processor."""
    tokenizer = build_word_tokenizer(words, model_max_length=config.max_text_length)
    special = {
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    clip_config = CLIPConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": config.text_hidden,
            "intermediate_size": 4 * config.text_hidden,
            "num_hidden_layers": config.text_layers,
            "num_attention_heads": config.text_heads,
            "max_position_embeddings": config.max_text_length,
            **special,
        },
        vision_config={
            "image_size": config.image_size,
            "patch_size": config.patch_size,
            "hidden_size": config.vision_hidden,
            "intermediate_size": 4 * config.vision_hidden,
            "num_hidden_layers": config.vision_layers,
            "num_attention_heads": config.vision_heads,
        },
        projection_dim=config.projection_dim,
    )
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": config.image_size},
        crop_size={"height": config.image_size, "width": config.image_size},
        image_mean=CLIP_MEAN,
        image_std=CLIP_STD,
    )
    processor = CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)
    return CLIPModel(clip_config), processor


def all_scenes() -> list[Scene]:
    """One scene per attribute combination (180), in a fixed order."""
    return [
        Scene(shape, colour, size, count, (), 0, 0)
        for shape in SHAPES
        for colour in COLOURS
        for size in SIZES
        for count in COUNTS
    ]


def all_captions() -> list[str]:
    """The 180 distinct canonical captions of the world, in ``all_scenes`` order."""
    from drum.builtin.world.language import canonical_caption

    return [canonical_caption(scene) for scene in all_scenes()]


def preprocess_images(image_processor: Any, paths: list[Path], desc: str) -> torch.Tensor:
    """``pixel_values`` of every image, through the model's own image processor, in chunks."""
    chunks = []
    for start in tqdm(range(0, len(paths), 1024), desc=desc, unit="batch"):
        images = [load_image(p) for p in paths[start : start + 1024]]
        chunks.append(image_processor(images=images, return_tensors="pt")["pixel_values"])
    return torch.cat(chunks)


@torch.inference_mode()
def zero_shot_attribute_accuracy(
    model: CLIPModel, processor: CLIPProcessor, pixels: torch.Tensor, metas: list[dict[str, Any]]
) -> dict[str, float]:
    """Per attribute, how often the best-matching of all 180 captions names it correctly."""
    model.eval()
    captions = all_captions()
    tokens = processor.tokenizer(captions, padding=True, return_tensors="pt")
    text = model.get_text_features(
        input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
    )
    text = torch.nn.functional.normalize(text.pooler_output, dim=-1)
    image = torch.cat(
        [
            model.get_image_features(pixel_values=pixels[i : i + 512]).pooler_output
            for i in range(0, len(pixels), 512)
        ]
    )
    best = (torch.nn.functional.normalize(image, dim=-1) @ text.T).argmax(dim=1).tolist()
    scenes = all_scenes()
    accuracy = {}
    for attribute in ("shape", "colour", "size", "count"):
        correct = [
            scenes[b].attributes()[attribute] == meta[attribute]
            for b, meta in zip(best, metas, strict=True)
        ]
        accuracy[attribute] = float(np.mean(correct))
    accuracy["all"] = float(
        np.mean(
            [
                scenes[b].attributes() == {k: m[k] for k in ("shape", "colour", "size", "count")}
                for b, m in zip(best, metas, strict=True)
            ]
        )
    )
    return accuracy


def embedder_checkpointer(
    out_dir: Path, config: BuiltinEmbedderConfig, world_dir: Path
) -> Checkpointer:
    """The run's checkpoints and card: ``.finished()`` says whether ``out_dir`` is current."""
    # The card keeps the identity's keys at its top level, as cards before the helper did.
    identity = {"config": asdict(config), "world": world_identity(load_world_card(world_dir))}
    return Checkpointer(out_dir, identity, CARD_NAME, identity_key=None)


def train_builtin_embedder(
    world_dir: str | Path,
    out_dir: str | Path,
    config: BuiltinEmbedderConfig | None = None,
    progress: bool = True,
    checkpoint_every: int = CHECKPOINT_EVERY,
) -> Path:
    """Train the built-in CLIP on the world's ``train.jsonl`` and save it to ``out_dir``.

    Skipped when ``out_dir`` already holds a model trained with the same config on the same
    world. Checkpointed every ``checkpoint_every`` steps (not part of the run's identity: the
    weights do not depend on it); a killed run resumes and ends with the uninterrupted run's
    weights. The model is written to a temporary sibling and renamed into place when complete.
    """
    config = config or BuiltinEmbedderConfig()
    world_dir, out_dir = Path(world_dir), Path(out_dir)
    checkpointer = embedder_checkpointer(out_dir, config, world_dir)
    if checkpointer.finished():
        return out_dir
    seed_everything(config.seed)
    model, processor = build_clip(config, vocabulary())
    train = read_examples(world_dir / "train.jsonl", verify_images=False)
    val = read_examples(world_dir / "caption" / "val.jsonl", verify_images=False)
    pixels = preprocess_images(
        processor.image_processor, [e.image for e in train], "preprocessing train images"
    )
    val_pixels = preprocess_images(
        processor.image_processor, [e.image for e in val], "preprocessing val images"
    )
    captions = [e.answer for e in train]
    caption_index = {caption: i for i, caption in enumerate(all_captions())}
    caption_ids = torch.tensor([caption_index[c] for c in captions])
    tokens = processor.tokenizer(captions, padding=True, return_tensors="pt")

    optimizer, scheduler = adamw_warmup_cosine(
        list(model.parameters()), config.lr, config.weight_decay, config.steps, config.warmup_steps
    )
    generator = torch.Generator().manual_seed(config.seed)
    model.train()

    def step(_: int) -> float:
        batch = torch.randint(len(train), (config.batch_size,), generator=generator)
        image = model.get_image_features(pixel_values=pixels[batch]).pooler_output
        text = model.get_text_features(
            input_ids=tokens["input_ids"][batch], attention_mask=tokens["attention_mask"][batch]
        ).pooler_output
        logits = model.logit_scale.exp() * (
            torch.nn.functional.normalize(image, dim=-1)
            @ torch.nn.functional.normalize(text, dim=-1).T
        )
        positives = caption_ids[batch, None] == caption_ids[None, batch]
        loss = multi_positive_contrastive_loss(logits, positives)
        clipped_step(loss, optimizer, scheduler, model.parameters())
        with torch.no_grad():  # CLIP clamps its temperature at 100
            model.logit_scale.clamp_(0, math.log(100))
        return loss.item()

    result = run_training(
        step,
        checkpointer,
        {"model": model, "optimizer": optimizer, "scheduler": scheduler},
        LoopConfig(max_steps=config.steps, checkpoint_every=checkpoint_every, log_every=50),
        generators={"batches": generator},
        desc="training built-in CLIP",
        progress=progress,
    )
    accuracy = zero_shot_attribute_accuracy(model, processor, val_pixels, [e.meta for e in val])
    card = {
        **result.summary(),
        # The mean loss of the last 50 steps (the last history entry's window).
        "final_loss": result.history[-1]["loss"],
        "val_zero_shot_accuracy": accuracy,
    }
    with checkpointer.finish(card) as staging:
        model.save_pretrained(staging)
        processor.save_pretrained(staging)
    return out_dir

"""The built-in BLIP-2's architecture: BLIP-2's recipe at toy scale, built from config.

Vision tower: a ``Blip2VisionModel`` over 64 px images in 8 px patches (64 patch features and
a CLS token). Q-Former: 2 layers, cross-attention in each, ``num_query_tokens`` learned
queries (8: the bottleneck). Language model: a small ``LlamaForCausalLM`` over the word
vocabulary of ``drum.builtin.blip2.questions``. Saved as ``HFLVLM`` loads any BLIP-2
checkpoint: the model, the tokenizer carrying the chat template (the built-in LVLM's, so a
reply follows ``answer``), and a ``BlipImageProcessorPil``; ``HFLVLM`` expands every
``<image>`` into the query tokens' outputs (``Blip2InterleavedProcessor``).

Dropout is off everywhere (the Q-Former's default is 0.1): VPG-C runs the frozen Q-Former
again inside the language model's pass, and train and eval modes must compute the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    Blip2Config,
    Blip2ForConditionalGeneration,
    BlipImageProcessorPil,
    PreTrainedTokenizerFast,
)

from drum.builtin.blip2.questions import vocabulary
from drum.builtin.blip2.scenes import IMAGE_SIZE, PATCH
from drum.builtin.lvlm.model import ANSWER_MARKER, CHAT_TEMPLATE, IMAGE_TOKEN
from drum.builtin.tokenizer import build_word_tokenizer


@dataclass(frozen=True)
class Blip2Architecture:
    """Sizes of the built-in BLIP-2."""

    vision_hidden: int = 64
    vision_layers: int = 2
    qformer_hidden: int = 64
    qformer_layers: int = 2
    num_queries: int = 8
    lm_hidden: int = 128
    lm_layers: int = 4
    heads: int = 4
    max_positions: int = 256

    def __post_init__(self) -> None:
        for width in (self.vision_hidden, self.qformer_hidden, self.lm_hidden):
            if width % self.heads:
                raise ValueError(f"every width must be a multiple of heads ({self.heads})")
        if self.lm_layers < 2:
            raise ValueError("the LM needs >= 2 layers (VPG-C hooks a middle one)")


def build_tokenizer(max_positions: int) -> PreTrainedTokenizerFast:
    tokenizer = build_word_tokenizer(
        [*vocabulary(), *ANSWER_MARKER],
        model_max_length=max_positions,
        wrap_bos_eos=False,
        extra_special_tokens=(IMAGE_TOKEN,),
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_builtin_blip2(
    architecture: Blip2Architecture, seed: int = 0
) -> tuple[Blip2ForConditionalGeneration, PreTrainedTokenizerFast, BlipImageProcessorPil]:
    """A new, randomly initialised built-in BLIP-2, its tokenizer and image processor."""
    tokenizer = build_tokenizer(architecture.max_positions)
    a = architecture
    config = Blip2Config(
        vision_config={
            "hidden_size": a.vision_hidden,
            "intermediate_size": 2 * a.vision_hidden,
            "num_hidden_layers": a.vision_layers,
            "num_attention_heads": a.heads,
            "image_size": IMAGE_SIZE,
            "patch_size": PATCH,
            "attention_dropout": 0.0,
        },
        qformer_config={
            "hidden_size": a.qformer_hidden,
            "intermediate_size": 2 * a.qformer_hidden,
            "num_hidden_layers": a.qformer_layers,
            "num_attention_heads": a.heads,
            "encoder_hidden_size": a.vision_hidden,
            "cross_attention_frequency": 1,
            "hidden_dropout_prob": 0.0,
            "attention_probs_dropout_prob": 0.0,
            "vocab_size": len(tokenizer),
        },
        text_config={
            "model_type": "llama",
            "vocab_size": len(tokenizer),
            "hidden_size": a.lm_hidden,
            "intermediate_size": 4 * a.lm_hidden,
            "num_hidden_layers": a.lm_layers,
            "num_attention_heads": a.heads,
            "num_key_value_heads": a.heads,
            "max_position_embeddings": a.max_positions,
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "tie_word_embeddings": False,
        },
        num_query_tokens=a.num_queries,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
    )
    torch.manual_seed(seed)
    model = Blip2ForConditionalGeneration(config)
    reinitialise_queries(model, seed)
    for name in ("pad_token_id", "eos_token_id", "bos_token_id"):
        setattr(model.generation_config, name, getattr(tokenizer, name))
    size = {"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    return model, tokenizer, BlipImageProcessorPil(size=size)


def reinitialise_queries(model: Blip2ForConditionalGeneration, seed: int) -> None:
    """New random query tokens (N(0, 1); BLIP-2 starts them at zero, which would make every
    query read alike)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        fresh = torch.randn(model.query_tokens.shape, generator=generator)
        model.query_tokens.copy_(fresh.to(model.query_tokens.dtype))


def save_builtin_blip2(
    model: Blip2ForConditionalGeneration,
    tokenizer: PreTrainedTokenizerFast,
    image_processor: BlipImageProcessorPil,
    directory: Path,
) -> Path:
    """Write what ``HFLVLM(directory)`` loads."""
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    image_processor.save_pretrained(directory)
    return directory

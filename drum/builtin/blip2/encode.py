"""Questions encoded as ``HFLVLM`` encodes them, and the pool's frozen vision features.

Training runs the Q-Former and the language model from vision features computed once (the
tower is frozen after its own stage), so each step must build exactly the inputs ``HFLVLM``
builds from the same question written as a DEMON sample: ``demon_prompt`` (the instruction,
then the context with each image where its placeholder stands), the chat template, each
``<image>`` expanded to ``num_query_tokens`` image tokens (``Blip2InterleavedProcessor``), the
response and ``[EOS]`` labelled. ``tests/builtin/blip2`` checks the loss equals
``HFLVLM.answer_loss`` on the same samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import Blip2ForConditionalGeneration, BlipImageProcessorPil

from drum.builtin.blip2.questions import INSTRUCTION, Key, Question, ScenePool
from drum.builtin.blip2.scenes import render
from drum.builtin.lvlm.model import IMAGE_TOKEN
from drum.builtin.lvlm.train import IGNORE, answers_right, pad_rows
from drum.demon.format import DemonSample, DemonTask
from drum.demon.prompt import demon_prompt

Encoded = tuple[list[int], list[int], list[int]]  # (input_ids, labels, feature rows)


def demon_sample(question: Question, images: Sequence[Path], sample_id: int = 0) -> DemonSample:
    return DemonSample(sample_id, 0, question.context, tuple(images), None, question.response)


def demon_task(name: str, split: str, samples: Sequence[DemonSample]) -> DemonTask:
    return DemonTask(name, name, split, (INSTRUCTION,), "open-ended", tuple(samples))


class QuestionEncoder:
    """Token ids and labels of questions, as ``HFLVLM`` renders them for a built-in BLIP-2."""

    def __init__(self, tokenizer: object, num_queries: int) -> None:
        self.tokenizer = tokenizer
        self.num_queries = num_queries
        self.eos = tokenizer.eos_token_id  # type: ignore[attr-defined]

    @lru_cache(maxsize=1 << 16)  # noqa: B019 - lives as long as one training run
    def prompt_ids(self, context: str, n_images: int) -> tuple[int, ...]:
        question = Question(context, (), "")
        sample = demon_sample(question, [Path(f"{k}.png") for k in range(n_images)])
        prompt = demon_prompt(demon_task("t", "train", [sample]), sample)
        text = self.tokenizer.apply_chat_template(  # type: ignore[attr-defined]
            prompt.to_messages(), add_generation_prompt=True, tokenize=False
        )
        text = text.replace(IMAGE_TOKEN, IMAGE_TOKEN * self.num_queries)
        return tuple(self.tokenizer(text, add_special_tokens=False)["input_ids"])  # type: ignore[operator]

    @lru_cache(maxsize=1 << 12)  # noqa: B019
    def answer_ids(self, response: str) -> tuple[int, ...]:
        ids = self.tokenizer(response, add_special_tokens=False)["input_ids"]  # type: ignore[operator]
        return (*ids, self.eos)

    def encode(self, question: Question, rows: Sequence[int]) -> Encoded:
        prompt = self.prompt_ids(question.context, len(question.images))
        answer = self.answer_ids(question.response)
        return [*prompt, *answer], [IGNORE] * len(prompt) + list(answer), list(rows)


def pixel_values(
    image_processor: BlipImageProcessorPil, pool: ScenePool, keys: Sequence[Key]
) -> torch.Tensor:
    """The processor's ``pixel_values`` of the rendered scenes (what PNGs of them give)."""
    chunks = []
    for start in range(0, len(keys), 512):
        images = [Image.fromarray(render(pool.scene(k))[0]) for k in keys[start : start + 512]]
        chunks.append(image_processor(images=images, return_tensors="pt")["pixel_values"])
    return torch.cat(chunks)


@torch.no_grad()
def vision_features(model: Blip2ForConditionalGeneration, pixels: torch.Tensor) -> torch.Tensor:
    """``(N, 1 + P, d)``: the vision tower's output, what the Q-Former reads."""
    chunks = [
        model.vision_model(pixel_values=pixels[i : i + 512]).last_hidden_state
        for i in range(0, len(pixels), 512)
    ]
    return torch.cat(chunks)


class PoolFeatures:
    """The frozen tower's features of every image of a pool (``keys``), row by key."""

    def __init__(
        self,
        model: Blip2ForConditionalGeneration,
        image_processor: BlipImageProcessorPil,
        pool: ScenePool,
        keys: Sequence[Key] | None = None,
    ) -> None:
        self.pool = pool
        self.keys = list(pool.keys() if keys is None else keys)
        self.rows = {key: row for row, key in enumerate(self.keys)}
        self.features = vision_features(model, pixel_values(image_processor, pool, self.keys))


def query_outputs(
    model: Blip2ForConditionalGeneration,
    features: torch.Tensor,
    query_tokens: torch.Tensor | None = None,
) -> torch.Tensor:
    """``(N, Q, d_qformer)``: the Q-Former's query outputs over vision ``features``."""
    queries = model.query_tokens if query_tokens is None else query_tokens
    return model.qformer(
        query_embeds=queries.expand(features.shape[0], -1, -1),
        encoder_hidden_states=features,
        encoder_attention_mask=torch.ones(features.shape[:2], dtype=torch.long),
        return_dict=True,
    ).last_hidden_state


def batch_forward(
    model: Blip2ForConditionalGeneration,
    features: torch.Tensor,
    batch: Sequence[Encoded],
    pad_id: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(logits, loss, labels, query outputs)`` of encoded questions (right-padded), their
    images' rows of ``features``; ``Blip2ForConditionalGeneration.forward``'s computation."""
    input_ids = pad_rows([ids for ids, _, _ in batch], pad_id)
    labels = pad_rows([lab for _, lab, _ in batch], IGNORE)
    attention_mask = pad_rows([[1] * len(ids) for ids, _, _ in batch], 0)
    rows = torch.tensor([row for _, _, images in batch for row in images])
    queries = query_outputs(model, features[rows])
    image_embeds = model.language_projection(queries)
    embeds = model.get_input_embeddings()(input_ids)
    mask = (input_ids == model.config.image_token_index).unsqueeze(-1).expand_as(embeds)
    embeds = embeds.masked_scatter(mask, image_embeds.reshape(-1, embeds.shape[-1]))
    logits = model.language_model(inputs_embeds=embeds, attention_mask=attention_mask).logits
    shifted, targets = logits[:, :-1], labels[:, 1:]
    loss = torch.nn.functional.cross_entropy(
        shifted.reshape(-1, shifted.shape[-1]), targets.reshape(-1), ignore_index=IGNORE
    )
    return logits, loss, labels, queries


@torch.no_grad()
def answer_accuracy(
    model: Blip2ForConditionalGeneration,
    features: torch.Tensor,
    samples: Sequence[Encoded],
    pad_id: int,
    batch: int = 128,
) -> float:
    """How often every answer token (and ``[EOS]``) is the argmax under teacher forcing."""
    right: list[bool] = []
    for start in range(0, len(samples), batch):
        logits, _, labels, _ = batch_forward(
            model, features, samples[start : start + batch], pad_id
        )
        right += answers_right(logits, labels).tolist()
    return float(np.mean(right))

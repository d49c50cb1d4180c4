"""Training the built-in LVLM on in-context episodes (LLaVA stage 2 with a frozen vision tower).

The vision tower is frozen, so its features for every training image are computed once; each
step only runs the projector and the language model. Loss: next-token cross-entropy on every
answer (and its closing ``[EOS]``) in the episode, demonstrations' answers included.

How long to train: the switch from copying any demonstration's answer to matching the query
against the demonstrations is a phase change whose time varies by seed, so training stops
when the held-out probes pass ``stop_accuracy`` (after ``min_steps``) or at ``max_seconds``.
Progress is checkpointed every ``checkpoint_every`` steps and a rerun resumes from it
(``drum.utils.train_loop``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import LlavaForConditionalGeneration, LlavaProcessor

from drum.builtin.embedder import preprocess_images
from drum.builtin.lvlm.episodes import Episode, EpisodeSampler, scene_from_meta
from drum.builtin.lvlm.model import (
    ANSWER_MARKER,
    BuiltinLVLMArchitecture,
    build_builtin_lvlm,
    visual_tokens_per_image,
)
from drum.builtin.world.generate import load_world_card, world_identity
from drum.data.jsonl import read_examples
from drum.utils.checkpoint import Checkpointer
from drum.utils.fingerprint import directory_digest
from drum.utils.schedule import adamw_warmup_cosine, clipped_step
from drum.utils.seed import seed_everything
from drum.utils.train_loop import LoopConfig, run_training

CARD_NAME = "drum_lvlm.json"
IGNORE = -100
PROBES: dict[str, tuple[str, tuple[str, ...]]] = {
    # name: (task, demo kinds); "oracle1" = one revealing demo among three that do not.
    "vqa_zero": ("vqa", ()),
    "vqa_random4": ("vqa", ("random",) * 4),
    "vqa_oracle1": ("vqa", ("match", "miss", "miss", "miss")),
    "caption_oracle1": ("caption", ("match", "miss", "miss", "miss")),
    "classification_oracle1": ("classification", ("match", "miss", "miss", "miss")),
}
STOP_PROBES = ("vqa_oracle1", "caption_oracle1", "classification_oracle1")


@dataclass(frozen=True)
class BuiltinLVLMConfig:
    """Architecture and training recipe of the built-in LVLM."""

    architecture: BuiltinLVLMArchitecture = field(default_factory=BuiltinLVLMArchitecture)
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    max_steps: int = 6000
    min_steps: int = 600
    max_seconds: float = 420.0
    max_demos: int = 8
    demo_ramp_steps: int = 700
    vqa_only_steps: int = 1500
    plain_convention_share: float = 0.3
    stop_accuracy: float = 0.95
    eval_every: int = 200
    probe_episodes: int = 200
    checkpoint_every: int = 500
    seed: int = 0

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_steps < 1:
            raise ValueError("batch_size and max_steps must be >= 1")
        if not 0 < self.stop_accuracy <= 1:
            raise ValueError("stop_accuracy must be in (0, 1]")
        if self.min_steps > self.max_steps:
            raise ValueError("min_steps must be <= max_steps")


class EpisodeEncoder:
    """Token ids and labels of an episode, exactly as the chat template + processor write it."""

    def __init__(self, processor: LlavaProcessor, tokens_per_image: int) -> None:
        tokenizer = processor.tokenizer
        self.tokenizer = tokenizer
        self.bos, self.eos = tokenizer.bos_token_id, tokenizer.eos_token_id
        self.image = [tokenizer.convert_tokens_to_ids(processor.image_token)] * tokens_per_image
        self.marker = self.words(" ".join(ANSWER_MARKER))

    @lru_cache(maxsize=65536)  # noqa: B019 - the encoder lives as long as a training run
    def words(self, text: str) -> tuple[int, ...]:
        return tuple(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode(
        self, episode: Episode, query_answer: bool = True
    ) -> tuple[list[int], list[int], list[int]]:
        """``(input_ids, labels, image_rows)``.

        Labelled (trained on): the query's answer and ``[EOS]``, and a demonstration's answer
        when an earlier demonstration showed the same answer. Every other demonstration's
        answer is a convention word nothing before it reveals: training on it would only
        teach the model to ignore its context, the opposite of in-context learning.
        """
        ids, labels, images = [self.bos], [IGNORE], []
        turns = (*episode.demos, episode.query)
        seen: set[str] = set()
        for index, shot in enumerate(turns):
            prompt = [*self.image, *self.words(shot.text), *self.marker]
            ids += prompt
            labels += [IGNORE] * len(prompt)
            images.append(shot.image)
            is_query = index == len(turns) - 1
            if is_query and not query_answer:
                break
            answer = [*self.words(shot.answer), self.eos]
            ids += answer
            labels += answer if is_query or shot.answer in seen else [IGNORE] * len(answer)
            seen.add(shot.answer)
        return ids, labels, images


def pad_rows(rows: list[list[int]], value: int) -> torch.Tensor:
    """``rows`` right-padded with ``value`` to the longest, as one ``(len(rows), max)`` tensor."""
    length = max(len(row) for row in rows)
    return torch.tensor([row + [value] * (length - len(row)) for row in rows])


@torch.no_grad()
def vision_features(model: LlavaForConditionalGeneration, pixels: torch.Tensor) -> torch.Tensor:
    """``(N, tokens, D_vision)``: the frozen tower's output that LLaVA projects (layer -1, full)."""
    chunks = []
    for start in range(0, len(pixels), 512):
        output = model.model.vision_tower(pixels[start : start + 512], output_hidden_states=True)
        chunks.append(output.hidden_states[model.config.vision_feature_layer])
    return torch.cat(chunks)


def episode_logits_and_loss(
    model: LlavaForConditionalGeneration,
    features: torch.Tensor,
    batch: list[tuple[list[int], list[int], list[int]]],
    pad_id: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Forward a batch of encoded episodes from precomputed vision features."""
    input_ids = pad_rows([ids for ids, _, _ in batch], pad_id)
    labels = pad_rows([lab for _, lab, _ in batch], IGNORE)
    attention_mask = pad_rows([[1] * len(ids) for ids, _, _ in batch], 0)
    rows = torch.tensor([row for _, _, images in batch for row in images])
    embeds = model.get_input_embeddings()(input_ids)
    image_embeds = model.model.multi_modal_projector(features[rows]).reshape(-1, embeds.shape[-1])
    mask = (input_ids == model.config.image_token_id).unsqueeze(-1).expand_as(embeds)
    embeds = embeds.masked_scatter(mask, image_embeds.to(embeds.dtype))
    output = model(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels)
    return output.logits, output.loss, labels


def answers_right(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``(B,)`` bools: whether every labelled token of each row is the argmax of the logits
    before it (teacher forcing; ``IGNORE`` labels are not asked)."""
    predicted, targets = logits[:, :-1].argmax(-1), labels[:, 1:]
    return ((predicted == targets) | (targets == IGNORE)).all(dim=1)


@torch.no_grad()
def run_probes(
    model: LlavaForConditionalGeneration,
    features: torch.Tensor,
    sampler: EpisodeSampler,
    encoder: EpisodeEncoder,
    episodes: int,
    seed: int,
) -> dict[str, float]:
    """Accuracy (every answer token right under teacher forcing) on fixed held-out episodes."""
    model.eval()
    results = {}
    for name, (task, kinds) in PROBES.items():
        rng = np.random.default_rng([seed, sum(map(ord, name))])
        encoded = [encoder.encode(sampler.probe(rng, task, kinds)) for _ in range(episodes)]
        correct = []
        for start in range(0, len(encoded), 100):
            batch = encoded[start : start + 100]
            logits, _, labels = episode_logits_and_loss(
                model, features, batch, encoder.tokenizer.pad_token_id
            )
            predictions = logits[:, :-1].argmax(-1)
            targets = labels[:, 1:]
            for row, (ids, _, _) in enumerate(batch):
                # The query's answer is the last run of labelled tokens.
                query_start = len(ids) - 1 - _query_answer_length(labels[row, : len(ids)])
                span = slice(query_start, len(ids) - 1)
                correct.append(bool((predictions[row, span] == targets[row, span]).all()))
        results[name] = float(np.mean(correct))
    model.train()
    return results


def _query_answer_length(labels: torch.Tensor) -> int:
    length = 0
    for value in reversed(labels.tolist()):
        if value == IGNORE:
            break
        length += 1
    return length


def _shot_count(rng: np.random.Generator, step: int, config: BuiltinLVLMConfig) -> int:
    """Demonstrations in this step's episodes (one count per batch, so little padding).

    A curriculum: the most demonstrations grows from 1 to ``max_demos`` over
    ``demo_ramp_steps``. Starting with one or two demonstrations lets the model first learn to
    copy an answer from its context, the step before it learns to match the query against
    several candidates; without it the model sits at the no-context prior for a long time.
    After the ramp, 0..max_demos uniformly (zero-shot episodes teach the answer prior).
    """
    if step < config.demo_ramp_steps:
        cap = 1 + (config.max_demos - 1) * step // max(1, config.demo_ramp_steps)
        return int(rng.integers(1, cap + 1))
    return int(rng.integers(config.max_demos + 1))


def _load_split(world_dir: Path, name: str, processor: LlavaProcessor) -> tuple[list, torch.Tensor]:
    examples = read_examples(world_dir / name, verify_images=False)
    pixels = preprocess_images(
        processor.image_processor, [e.image for e in examples], f"preprocessing {name}"
    )
    return [scene_from_meta(e.meta) for e in examples], pixels


def _identity(world_dir: Path, embedder_dir: Path, config: BuiltinLVLMConfig) -> dict[str, Any]:
    return {
        "config": asdict(config),
        "world": world_identity(load_world_card(world_dir)),
        "embedder_digest": directory_digest(embedder_dir),
    }


def lvlm_checkpointer(
    out_dir: Path, world_dir: Path, embedder_dir: Path, config: BuiltinLVLMConfig
) -> Checkpointer:
    """The run's checkpoints and card: ``.finished()`` says whether ``out_dir`` is current."""
    return Checkpointer(out_dir, _identity(world_dir, embedder_dir, config), CARD_NAME)


def train_builtin_lvlm(
    world_dir: str | Path,
    embedder_dir: str | Path,
    out_dir: str | Path,
    config: BuiltinLVLMConfig | None = None,
    progress: bool = True,
) -> Path:
    """Train the built-in LVLM and save it (model, processor, card) to ``out_dir``."""
    config = config or BuiltinLVLMConfig()
    world_dir, embedder_dir, out_dir = Path(world_dir), Path(embedder_dir), Path(out_dir)
    checkpointer = lvlm_checkpointer(out_dir, world_dir, embedder_dir, config)
    if checkpointer.finished():
        return out_dir
    seed_everything(config.seed)
    model, processor = build_builtin_lvlm(config.architecture, embedder_dir)
    model.model.vision_tower.requires_grad_(False)
    class_attribute = load_world_card(world_dir)["config"]["class_attribute"]
    train_scenes, train_pixels = _load_split(world_dir, "train.jsonl", processor)
    probe_scenes, probe_pixels = _load_split(world_dir, "caption/val.jsonl", processor)
    train_features = vision_features(model, train_pixels)
    probe_features = vision_features(model, probe_pixels)
    sampler = EpisodeSampler(train_scenes, class_attribute)
    probe_sampler = EpisodeSampler(probe_scenes, class_attribute)
    encoder = EpisodeEncoder(processor, visual_tokens_per_image(model))
    pad_id = processor.tokenizer.pad_token_id

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer, scheduler = adamw_warmup_cosine(
        trainable, config.lr, config.weight_decay, config.max_steps, config.warmup_steps
    )
    rng = np.random.default_rng(config.seed)
    model.train()

    def step(index: int) -> float:
        n_demos = _shot_count(rng, index, config)
        # VQA alone first: its one-word answers make copying from context, then matching,
        # quickest to discover; the other tasks reuse those skills once they exist.
        task_mix = {"vqa": 1.0} if index < config.vqa_only_steps else None
        batch = [
            encoder.encode(sampler.sample(rng, n_demos, task_mix, config.plain_convention_share))
            for _ in range(config.batch_size)
        ]
        _, loss, _ = episode_logits_and_loss(model, train_features, batch, pad_id)
        clipped_step(loss, optimizer, scheduler, trainable)
        return loss.item()

    def probes(_: int) -> dict[str, float]:
        return run_probes(
            model, probe_features, probe_sampler, encoder, config.probe_episodes, config.seed
        )

    def passed(entry: dict[str, Any]) -> bool:
        return entry["step"] >= config.min_steps and all(
            entry[k] >= config.stop_accuracy for k in STOP_PROBES
        )

    result = run_training(
        step,
        checkpointer,
        {"model": model, "optimizer": optimizer, "scheduler": scheduler},
        LoopConfig(
            max_steps=config.max_steps,
            max_seconds=config.max_seconds,
            checkpoint_every=config.checkpoint_every,
            log_every=config.eval_every,
        ),
        generators={"episodes": rng},
        evaluate=probes,
        stop_when=passed,
        stop_reason="probes_passed",
        desc="training built-in LVLM",
        progress=progress,
        show=STOP_PROBES,
    )
    final = result.history[-1] if result.history else {}
    card = {
        **result.summary(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "trainable_parameters": sum(p.numel() for p in trainable),
        "final_probes": {k: v for k, v in final.items() if k in PROBES},
        "history": result.history,
    }
    with checkpointer.finish(card) as staging:
        model.save_pretrained(staging)
        processor.save_pretrained(staging)
    return out_dir

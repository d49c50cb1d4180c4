"""The built-in DEMON base LVLM and its supervised training on DEMON-format tasks.

One trainer serves two runs:

* **the base** (``train_demon_base``): a new built-in LLaVA (``drum.builtin.lvlm.model``,
  frozen built-in CLIP tower) speaking every word of the DEMON tasks, trained on the generic
  formats of ``drum.builtin.demon.generic`` only, so that it is evaluated zero-shot on the
  benchmark tasks;
* **a supervised ceiling** (``train_demon_lvlm(start=base, ...)``): the base fine-tuned on one
  benchmark task's own train split, to show how much of a task the base could learn at all.

Every sample is encoded exactly as ``HFLVLM`` encodes it at evaluation (``demon_prompt``, the
model's chat template, each image expanded to its visual tokens), with its response and
``[EOS]`` as the only labelled tokens. The vision tower is frozen, so each distinct image is
encoded once; a step runs the projector and the language model. Steps sample a task
uniformly, then a sample of it. Checkpointed (``drum.utils.train_loop``): a rerun resumes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import LlavaForConditionalGeneration, LlavaProcessor

from drum.builtin.embedder import preprocess_images
from drum.builtin.lvlm.model import (
    IMAGE_TOKEN,
    BuiltinLVLMArchitecture,
    build_builtin_lvlm,
    visual_tokens_per_image,
)
from drum.builtin.lvlm.train import (
    IGNORE,
    answers_right,
    episode_logits_and_loss,
    vision_features,
)
from drum.demon.format import DemonTask
from drum.demon.prompt import demon_prompt
from drum.utils.checkpoint import Checkpointer
from drum.utils.fingerprint import directory_digest
from drum.utils.schedule import adamw_warmup_cosine, clipped_step
from drum.utils.seed import seed_everything
from drum.utils.train_loop import LoopConfig, run_training

CARD_NAME = "drum_demon_lvlm.json"
# Tokens the reference's choice list prints ("Choice list:['a', 'b']") beyond the tasks' words.
CHOICE_LIST_PUNCTUATION = ("[", "]", "'")

Encoded = tuple[list[int], list[int], list[int]]  # (input_ids, labels, image rows)


@dataclass(frozen=True)
class DemonLVLMConfig:
    """Recipe of one supervised run (the base from scratch, or a ceiling from the base).

    ``eval_every`` steps, the teacher-forced accuracy on the probe tasks (whole answer right)
    is recorded in the card's history.
    """

    architecture: BuiltinLVLMArchitecture = field(default_factory=BuiltinLVLMArchitecture)
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    max_steps: int = 3000
    max_seconds: float = 900.0
    eval_every: int = 250
    checkpoint_every: int = 500
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.architecture, dict):  # read back from a card's JSON
            object.__setattr__(self, "architecture", BuiltinLVLMArchitecture(**self.architecture))
        if self.batch_size < 1 or self.max_steps < 1:
            raise ValueError("batch_size and max_steps must be >= 1")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.eval_every < 1 or self.checkpoint_every < 1:
            raise ValueError("eval_every and checkpoint_every must be >= 1")


BASE_CONFIG = DemonLVLMConfig()
CEILING_CONFIG = DemonLVLMConfig(lr=5e-4, warmup_steps=30, max_steps=300, eval_every=100)
"""Fine-tuning the base on one task: a lower rate and fewer steps than training it."""


def base_vocabulary() -> list[str]:
    """Every word of the benchmark tasks, the generic formats and the choice lists, lowercased
    as the word tokenizer reads text (``Image B`` is ``image b``)."""
    from drum.builtin.demon.generic import GENERIC_INSTRUCTIONS
    from drum.builtin.demon.vocab import vocabulary

    words = set(vocabulary()) | set(CHOICE_LIST_PUNCTUATION)
    for instructions in GENERIC_INSTRUCTIONS.values():
        for text in instructions:
            words.update(text.split())
    return sorted({word.lower() for word in words})


class SampleEncoder:
    """Token ids and labels of DEMON samples as ``HFLVLM`` renders them for this model."""

    def __init__(self, processor: LlavaProcessor, tokens_per_image: int) -> None:
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.tokens_per_image = tokens_per_image

    def prompt_ids(self, task: DemonTask, index: int) -> list[int]:
        prompt = demon_prompt(task, task.samples[index])
        text = self.processor.apply_chat_template(
            prompt.to_messages(), add_generation_prompt=True, tokenize=False
        )
        # What LlavaProcessor does with each image placeholder before tokenising.
        text = text.replace(IMAGE_TOKEN, IMAGE_TOKEN * self.tokens_per_image)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def encode(self, task: DemonTask, index: int, image_rows: dict[Path, int]) -> Encoded:
        sample = task.samples[index]
        prompt = self.prompt_ids(task, index)
        answer = self.tokenizer(str(sample.response), add_special_tokens=False)["input_ids"]
        answer = [*answer, self.tokenizer.eos_token_id]
        images = demon_prompt(task, sample).images  # in the order the model consumes them
        return (
            [*prompt, *answer],
            [IGNORE] * len(prompt) + answer,
            [image_rows[Path(path)] for path in images],
        )


def tasks_digest(tasks: Sequence[DemonTask]) -> str:
    """SHA-256 over what training reads of the tasks: prompts, responses and image files."""
    digest = hashlib.sha256()
    for task in tasks:
        digest.update(task.name.encode())
        for sample in task.samples:
            digest.update(repr((task.instructions[sample.instruction_id], sample.context)).encode())
            digest.update(repr((sample.choices, sample.response)).encode())
            for path in sample.images:
                digest.update(Path(path).read_bytes())
    return digest.hexdigest()


class EncodedTasks:
    """Every sample of some tasks encoded, with the vision features of their images."""

    def __init__(
        self,
        model: LlavaForConditionalGeneration,
        processor: LlavaProcessor,
        tasks: Sequence[DemonTask],
        desc: str,
    ) -> None:
        paths = sorted({Path(p) for task in tasks for s in task.samples for p in s.images})
        rows = {path: row for row, path in enumerate(paths)}
        encoder = SampleEncoder(processor, visual_tokens_per_image(model))
        self.names = [task.name for task in tasks]
        self.samples: list[list[Encoded]] = [
            [encoder.encode(task, i, rows) for i in range(len(task.samples))] for task in tasks
        ]
        pixels = preprocess_images(processor.image_processor, paths, desc)
        self.features = vision_features(model, pixels)

    def draw(self, rng: np.random.Generator, n: int) -> list[Encoded]:
        """``n`` samples: each of a uniformly drawn task, then uniformly within it."""
        tasks = rng.integers(len(self.samples), size=n)
        return [self.samples[t][int(rng.integers(len(self.samples[t])))] for t in tasks]


@torch.no_grad()
def probe_accuracy(
    model: LlavaForConditionalGeneration, probes: EncodedTasks, pad_id: int, batch: int = 64
) -> dict[str, float]:
    """Per probe task, how often every answer token is the argmax under teacher forcing."""
    was_training = model.training
    model.eval()
    results = {}
    for name, samples in zip(probes.names, probes.samples, strict=True):
        correct = []
        for start in range(0, len(samples), batch):
            chunk = samples[start : start + batch]
            logits, _, labels = episode_logits_and_loss(model, probes.features, chunk, pad_id)
            correct += answers_right(logits, labels).tolist()
        results[name] = float(np.mean(correct))
    model.train(was_training)
    return results


def train_demon_lvlm(
    tasks: Sequence[DemonTask],
    out_dir: str | Path,
    config: DemonLVLMConfig,
    *,
    start: str | Path | None = None,
    embedder_dir: str | Path | None = None,
    probes: Sequence[DemonTask] = (),
    about: dict[str, Any] | None = None,
    progress: bool = True,
) -> Path:
    """Train on ``tasks`` and save model, processor and card to ``out_dir``.

    From ``start`` (a saved built-in DEMON LVLM) when given, else a new model over
    ``embedder_dir``'s CLIP with ``base_vocabulary()``. ``probes`` (held-out tasks) are
    measured every ``config.eval_every`` steps. ``about`` (JSON) is recorded in the run's
    identity, e.g. the config that generated the data. A finished ``out_dir`` of the same run
    (config, data, start) is returned as is; an interrupted one resumes from its checkpoint.
    """
    if not tasks:
        raise ValueError("no task to train on")
    if (start is None) == (embedder_dir is None):
        raise ValueError("give exactly one of start (a model to fine-tune) or embedder_dir")
    out_dir = Path(out_dir)
    identity = {
        "config": asdict(config),
        "tasks": [task.name for task in tasks],
        "tasks_digest": tasks_digest(tasks),
        "start_digest": None if start is None else directory_digest(Path(start)),
        "embedder_digest": None if embedder_dir is None else directory_digest(Path(embedder_dir)),
        **(about or {}),
    }
    checkpointer = Checkpointer(out_dir, identity, CARD_NAME)
    if checkpointer.finished():
        return out_dir
    seed_everything(config.seed)
    if start is not None:
        model = LlavaForConditionalGeneration.from_pretrained(start)
        processor = LlavaProcessor.from_pretrained(start)
    else:
        assert embedder_dir is not None
        model, processor = build_builtin_lvlm(
            config.architecture, Path(embedder_dir), base_vocabulary()
        )
    model.model.vision_tower.requires_grad_(False)
    data = EncodedTasks(model, processor, tasks, "encoding training images")
    probe_data = EncodedTasks(model, processor, probes, "encoding probe images") if probes else None
    pad_id = processor.tokenizer.pad_token_id

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer, scheduler = adamw_warmup_cosine(
        trainable, config.lr, config.weight_decay, config.max_steps, config.warmup_steps
    )
    rng = np.random.default_rng(config.seed)
    model.train()

    def step(_: int) -> float:
        _, loss, _ = episode_logits_and_loss(
            model, data.features, data.draw(rng, config.batch_size), pad_id
        )
        clipped_step(loss, optimizer, scheduler, trainable)
        return loss.item()

    def probes(_: int) -> dict[str, Any]:
        if probe_data is None:
            return {}
        return {"probes": probe_accuracy(model, probe_data, pad_id)}

    what = "training DEMON base" if start is None else f"fine-tuning on {'+'.join(data.names)}"
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
        generators={"samples": rng},
        evaluate=probes,
        desc=what,
        progress=progress,
    )
    history = result.history
    card = {
        **result.summary(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "trainable_parameters": sum(p.numel() for p in trainable),
        "final_probes": history[-1].get("probes", {}) if history else {},
        "history": history,
    }
    with checkpointer.finish(card) as staging:
        model.save_pretrained(staging)
        processor.save_pretrained(staging)
    return out_dir

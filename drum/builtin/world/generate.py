"""``make_world``: write the built-in world's splits as JSONL + PNG, deterministically.

Layout of ``out_dir``::

    world.json                 config, the datasets' convention, counts (the world's card)
    train.jsonl                images with true attributes and plain English captions:
                               what the built-in embedder and LVLM train on
    {vqa,caption,classification}/{pool,val,test}.jsonl
                               the three tasks over the same pool / val / test images,
                               answers written in the world's convention
    images/{train,pool,val,test}/NNNNN.png

The world is built in a temporary sibling directory and renamed into place at the end, so an
interrupted run never leaves a half-written world; a world whose ``world.json`` matches the
requested config is left as it is.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from drum.builtin.world.language import (
    CAPTION_PROMPT,
    CLASSIFICATION_PROMPT,
    NONSENSE_WORDS,
    QUESTION_TEMPLATES,
    QUESTION_TYPES,
    Convention,
    canonical_caption,
    question_text,
    sample_convention,
)
from drum.builtin.world.scene import Scene, render_scene, sample_scene
from drum.builtin.world.tasks import WORLD_TASKS
from drum.data.example import Example
from drum.data.jsonl import write_examples
from drum.utils.checkpoint import card_matches
from drum.utils.io import atomic_directory, atomic_write_json

EVAL_SPLITS = ("pool", "val", "test")
WORLD_FORMAT_VERSION = 1
# Captioning references: the full caption twice, then with size, count, or both left out.
CAPTION_REFERENCE_DROPS: tuple[tuple[str, ...], ...] = (
    (),
    (),
    ("size",),
    ("count",),
    ("size", "count"),
)


@dataclass(frozen=True)
class WorldConfig:
    """How big the world is and how it is drawn."""

    seed: int = 0
    image_size: int = 32
    noise_std: float = 12.0
    n_train: int = 20000
    n_pool: int = 2000
    n_val: int = 500
    n_test: int = 1000
    vqa_human_answers: int = 10
    vqa_disagreement: float = 0.05  # chance that one human answer is another convention word
    class_attribute: str = "shape"

    def __post_init__(self) -> None:
        for name in ("n_train", "n_pool", "n_val", "n_test", "vqa_human_answers", "image_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"WorldConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.image_size < 16:
            raise ValueError(f"WorldConfig.image_size must be >= 16, got {self.image_size}")
        if not 0.0 <= self.vqa_disagreement < 0.5:
            raise ValueError("WorldConfig.vqa_disagreement must be in [0, 0.5)")
        if self.class_attribute not in QUESTION_TYPES:
            raise ValueError(f"WorldConfig.class_attribute must be one of {QUESTION_TYPES}")

    def split_sizes(self) -> dict[str, int]:
        return {"train": self.n_train, "pool": self.n_pool, "val": self.n_val, "test": self.n_test}


def _task_examples(
    task: str,
    split: str,
    scenes: list[Scene],
    image_paths: list[Path],
    convention: Convention,
    config: WorldConfig,
    rng: np.random.Generator,
) -> list[Example]:
    examples = []
    for index, (scene, image_path) in enumerate(zip(scenes, image_paths, strict=True)):
        meta: dict[str, Any] = {**scene.to_meta(), "split": split}
        if task == "vqa":
            question_type = QUESTION_TYPES[int(rng.integers(len(QUESTION_TYPES)))]
            template = int(rng.integers(len(QUESTION_TEMPLATES[question_type])))
            text = question_text(scene, question_type, template)
            gold = convention.vqa_answer(scene, question_type)
            answers = [gold]
            for _ in range(config.vqa_human_answers - 1):
                if rng.random() < config.vqa_disagreement:
                    answers.append(str(rng.choice(NONSENSE_WORDS)))
                else:
                    answers.append(gold)
            meta.update(question_type=question_type, template=template)
        elif task == "caption":
            text = CAPTION_PROMPT
            answers = [convention.caption(scene, drop) for drop in CAPTION_REFERENCE_DROPS]
        else:
            text = CLASSIFICATION_PROMPT
            answers = [convention.class_label(scene)]
            meta.update(label=str(scene.attributes()[config.class_attribute]))
        examples.append(
            Example(
                id=f"{task}-{split}-{index:05d}",
                images=(image_path,),
                text=text,
                answers=tuple(answers),
                task=task,
                meta=meta,
            )
        )
    return examples


def _world_card(config: WorldConfig, convention: Convention) -> dict[str, Any]:
    return {
        "format_version": WORLD_FORMAT_VERSION,
        "config": asdict(config),
        "convention": convention.to_dict(),
        "splits": config.split_sizes(),
        "tasks": list(WORLD_TASKS),
    }


def world_is_current(out_dir: Path, config: WorldConfig) -> bool:
    """True when ``out_dir`` already holds the world that ``config`` describes."""
    expected = {"format_version": WORLD_FORMAT_VERSION, "config": asdict(config)}
    return card_matches(out_dir / "world.json", expected)


def load_world_card(world_dir: str | Path) -> dict[str, Any]:
    """The ``world.json`` of a world directory, with its convention parsed.

    The one reader of world cards: every model trained on a world identifies it through
    ``world_identity`` of this card.
    """
    card_path = Path(world_dir) / "world.json"
    if not card_path.is_file():
        raise FileNotFoundError(f"{card_path} not found: run `drum data make-world` first")
    card = json.loads(card_path.read_text(encoding="utf-8"))
    card["convention"] = Convention.from_dict(card["convention"])
    return card


def world_identity(card: dict[str, Any]) -> dict[str, Any]:
    """What identifies a world for the models trained on it: its config and format version."""
    return {"config": card["config"], "format_version": card["format_version"]}


def make_world(
    out_dir: str | Path, config: WorldConfig | None = None, progress: bool = True
) -> Path:
    """Generate the world into ``out_dir`` (skipped when it is already current)."""
    config = config or WorldConfig()
    out_dir = Path(out_dir)
    if world_is_current(out_dir, config):
        return out_dir
    rng = np.random.default_rng(config.seed)
    convention = sample_convention(rng, class_attribute=config.class_attribute)
    with atomic_directory(out_dir) as staging:
        scenes_by_split: dict[str, list[Scene]] = {}
        paths_by_split: dict[str, list[Path]] = {}
        total = sum(config.split_sizes().values())
        with tqdm(total=total, desc="rendering world", unit="img", disable=not progress) as bar:
            for split, size in config.split_sizes().items():
                image_dir = staging / "images" / split
                image_dir.mkdir(parents=True)
                scenes = [sample_scene(rng) for _ in range(size)]
                paths = []
                for index, scene in enumerate(scenes):
                    path = image_dir / f"{index:05d}.png"
                    pixels = render_scene(scene, config.image_size, config.noise_std)
                    Image.fromarray(pixels).save(path, format="PNG")
                    paths.append(path)
                    bar.update()
                scenes_by_split[split], paths_by_split[split] = scenes, paths

        train = [
            Example(
                id=f"train-{index:05d}",
                images=(path,),
                text=CAPTION_PROMPT,
                answers=(canonical_caption(scene),),
                task="caption",
                meta={**scene.to_meta(), "split": "train"},
            )
            for index, (scene, path) in enumerate(
                zip(scenes_by_split["train"], paths_by_split["train"], strict=True)
            )
        ]
        write_examples(staging / "train.jsonl", train)
        for task in WORLD_TASKS:
            for split in EVAL_SPLITS:
                examples = _task_examples(
                    task,
                    split,
                    scenes_by_split[split],
                    paths_by_split[split],
                    convention,
                    config,
                    rng,
                )
                write_examples(staging / task / f"{split}.jsonl", examples)
        atomic_write_json(staging / "world.json", _world_card(config, convention))
    return out_dir

"""``make_builtin_demon``: write the built-in DEMON-style tasks in the DEMON release layout.

Layout of ``out_root``::

    builtin_demon.json                    the card: config, world, tasks, chance levels
    {train,test}/<Task>/core/core.json    the release format (``drum.demon.format``)
    {train,test}/<Task>/core/images/NNNNN_k.png
    {train,test}/<Task>/meta.jsonl        per sample: the scenes' ground truth, the indices
                                          of the handwritten digits drawn (``digit_glyphs``,
                                          into scikit-learn's ``load_digits``) and what
                                          determines the response (the edit, the attribute)

Each split folder is a DEMON root (``read_demon_task(out_root / "test" / "SpotTheEdit")``).
Deterministic: one config (and world) gives byte-identical files; each task draws from its own
seed, ``(seed, split, crc32(name))``, so adding a task changes no other. The whole root is
built in a staging directory and renamed into place, so a killed run leaves the old root or
the new one.
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from drum.builtin.demon.card import CARD
from drum.builtin.demon.chance import chance_level
from drum.builtin.demon.config import SPLITS, BuiltinDemonConfig
from drum.builtin.demon.instructions import INSTRUCTIONS
from drum.builtin.demon.scenes import draw_digit
from drum.builtin.demon.tasks import DEMON_TASKS, IMAGE_CHOICE_BUILTIN_TASKS, Item, TaskGenerator
from drum.builtin.world.scene import render_scene
from drum.demon.categories import METRIC_NAMES
from drum.demon.format import IMAGES_DIR, DemonSample, DemonTask, write_demon_task
from drum.utils.io import atomic_directory, atomic_write_json, atomic_write_text

META = "meta.jsonl"
FORMAT_VERSION = 1
DEFAULT_IMAGE_SIZE = 32
DEFAULT_NOISE_STD = 12.0


def resolve_config(
    world_dir: str | os.PathLike[str] | None, config: BuiltinDemonConfig
) -> tuple[BuiltinDemonConfig, dict[str, Any] | None]:
    """``config`` with image size and noise filled in from the world (or the defaults), and
    the world's identity (None without a world)."""
    if world_dir is None:
        world = None
        size, noise = DEFAULT_IMAGE_SIZE, DEFAULT_NOISE_STD
    else:
        from drum.builtin.world.generate import load_world_card, world_identity

        world = world_identity(load_world_card(world_dir))
        size, noise = world["config"]["image_size"], world["config"]["noise_std"]
    resolved = replace(
        config,
        image_size=size if config.image_size is None else config.image_size,
        noise_std=noise if config.noise_std is None else config.noise_std,
    )
    return resolved, world


def task_rng(seed: int, split: str, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, SPLITS.index(split), zlib.crc32(name.encode())])


def _render(item: Item, config: BuiltinDemonConfig, paths: list[Path]) -> None:
    digits = item.digits or (None,) * len(item.scenes)
    for scene, digit, path in zip(item.scenes, digits, paths, strict=True):
        pixels = render_scene(scene, config.image_size, config.noise_std)
        if digit is not None:
            pixels = draw_digit(pixels, digit)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path, format="PNG")


def _meta_record(sample_id: int, item: Item) -> dict[str, Any]:
    scenes = [{**scene.to_meta(), "noise_seed": scene.noise_seed} for scene in item.scenes]
    return {"sample_id": sample_id, "scenes": scenes, "digit_glyphs": item.digits, **item.meta}


def generate_task(
    name: str,
    split: str,
    config: BuiltinDemonConfig,
    split_root: Path,
    registry: tuple[dict[str, TaskGenerator], dict[str, tuple[str, ...]]] = (
        DEMON_TASKS,
        INSTRUCTIONS,
    ),
) -> tuple[DemonTask, list[dict[str, Any]]]:
    """Draw and render one task's split under ``split_root/<name>/``; return the task (its
    images already in place) and its per-sample metadata. ``registry`` holds the generators
    and instructions by name: the benchmark's (default) or the base LVLM's generic formats."""
    specs, all_instructions = registry
    spec, instructions = specs[name], all_instructions[name]
    rng = task_rng(config.seed, split, name)
    images_dir = split_root / name / IMAGES_DIR
    samples, metas = [], []
    for index in range(config.split_sizes()[split]):
        item = spec.generator(rng, split)
        instruction_id = int(rng.integers(len(instructions)))
        names = [f"{index:05d}_{k}.png" for k in range(len(item.scenes))]
        paths = [images_dir / image_name for image_name in names]
        _render(item, config, paths)
        samples.append(
            DemonSample(
                sample_id=index,
                instruction_id=instruction_id,
                # The reference runs "Choice list:" straight on: a space keeps words apart.
                context=item.context + (" " if item.choices else ""),
                images=tuple(paths),
                choices=item.choices,
                response=item.response,
                image_names=tuple(names),
            )
        )
        metas.append(_meta_record(index, item))
    task = DemonTask(name, name, split, instructions, spec.question_type, tuple(samples))
    return task, metas


def make_builtin_demon(
    world_dir: str | os.PathLike[str] | None,
    out_root: str | os.PathLike[str],
    config: BuiltinDemonConfig | None = None,
) -> list[Path]:
    """Write every task of ``DEMON_TASKS`` for both splits under ``out_root`` (layout in the module
    docstring) and return the task folders, ``<out_root>/<split>/<Task>``, train first.

    ``world_dir`` (a ``make_world`` output, or None) sets the image size and noise unless the
    config does, and is recorded in the card.

    Example::

        dirs = make_builtin_demon(None, "builtin_demon", BuiltinDemonConfig(seed=0))
        read_demon_task(dirs[-1]).name     # 'WhichImage'
    """
    config, world = resolve_config(world_dir, config or BuiltinDemonConfig())
    out_root = Path(out_root)
    cards: dict[str, dict[str, Any]] = {
        name: {
            "category": spec.category,
            "question_type": spec.question_type,
            "image_choice": name in IMAGE_CHOICE_BUILTIN_TASKS,
            "metric": METRIC_NAMES[spec.question_type],
            "n_instructions": len(INSTRUCTIONS[name]),
            "chance": {},
        }
        for name, spec in DEMON_TASKS.items()
    }
    folders = []
    with atomic_directory(out_root) as staging:
        for split in SPLITS:
            for name in DEMON_TASKS:
                task, metas = generate_task(name, split, config, staging / split)
                task_dir = write_demon_task(task, staging / split)
                lines = [json.dumps(record, sort_keys=True) + "\n" for record in metas]
                atomic_write_text(task_dir / META, "".join(lines))
                image_choice = name in IMAGE_CHOICE_BUILTIN_TASKS
                cards[name]["chance"][split] = chance_level(task, image_choice)
                folders.append(out_root / split / name)
        card = {
            "format_version": FORMAT_VERSION,
            "config": asdict(config),
            "world": world,
            "splits": config.split_sizes(),
            "tasks": cards,
            "image_choice_tasks": sorted(IMAGE_CHOICE_BUILTIN_TASKS),
        }
        atomic_write_json(staging / CARD, card)
    return folders


def make_generic_demon(
    out_root: str | os.PathLike[str], config: BuiltinDemonConfig | None = None
) -> list[Path]:
    """Write the base LVLM's generic training formats (``drum.builtin.demon.generic``) in the
    same layout, ``<out_root>/{train,test}/<Format>/core/``, and return their folders (train
    first). ``config`` must be resolved (image size and noise set, see ``resolve_config``)."""
    from drum.builtin.demon.generic import GENERIC_INSTRUCTIONS, GENERIC_TASKS

    config = config or BuiltinDemonConfig()
    if config.image_size is None or config.noise_std is None:
        config, _ = resolve_config(None, config)
    out_root = Path(out_root)
    folders = []
    with atomic_directory(out_root) as staging:
        for split in SPLITS:
            for name in GENERIC_TASKS:
                task, _ = generate_task(
                    name, split, config, staging / split, (GENERIC_TASKS, GENERIC_INSTRUCTIONS)
                )
                write_demon_task(task, staging / split)
                folders.append(out_root / split / name)
        atomic_write_json(staging / "generic_demon.json", {"config": asdict(config)})
    return folders

"""Synthetic discriminative *in-context* episodes for VPG-C on the built-in world LVLM.

The DEMON-format tasks of ``drum.builtin.vpgc.data`` speak the DEMON base's vocabulary; the
world LVLM (``drum.builtin.lvlm``) speaks the world's and answers in conventions (nonsense
words) that only its demonstrations reveal. Its weak point is the one retrieval cannot fix:
with one revealing demonstration among three that show the same question with another answer
(the "oracle1" probe) it finds the revealing one only a few times in ten, because telling
them apart means comparing the query's image with every demonstration's on the very attribute
the question asks about. That is what VPG-C's instruction-guided re-attention is for, so the
synthetic data for this base puts the comparison in the episode:

* the **twin**: a demonstration whose image is the query's image edited so that the asked
  attribute changes (so its answer is another convention word): pixel-near-identical to the
  query, wrong for it;
* the **match**: a fresh scene with the query's answer (same value of the asked attribute;
  captioning: same shape and colour; classification: same class), which reveals the answer;
* the other demonstrations: fresh scenes with the same question and another answer ("miss")
  or random examples of the task, as the world LVLM's own training mixes them.

The edit. Counting questions add or remove one object in the chosen region (``make_edit``: the
object nearest the region goes, or one appears in a free cell of it); the image is otherwise
pixel-identical to the query's. The world draws every object of a scene alike and its
questions ask about all of them ("what colour is the circle ?"), so an edit of colour, shape
or size repaints *every* object's cell (from the edited scene's rendering with the same
noise); a one-object repaint would make a scene with no single answer. The region therefore
decides only the counting edits, where it is the least-attended patch of the query's image
under the query's own zero-shot prompt (``least_attended_regions``), or a random patch
(``region="random"``).

Episodes are written as images (PNG) plus ``episodes.jsonl`` and the card
``twin_episodes.json`` (the config and the base's fingerprint), in a staging directory renamed
into place; deterministic from the seed and, for ``region="attention"``, the base's weights.
``load_twin_samples(dir)`` gives ``(ICLPrompt, answer)`` pairs, each prompt built by
``build_prompt`` with the world task's template, exactly as ``drum eval`` builds it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from drum.builtin.vpgc.data import (
    PATCHES,
    REGIONS,
    least_attended_regions,
    make_edit,
    render_edit,
)
from drum.builtin.world.language import (
    ANSWER_VALUES,
    CAPTION_PROMPT,
    CLASSIFICATION_PROMPT,
    QUESTION_TEMPLATES,
    QUESTION_TYPES,
    Convention,
    question_text,
    sample_convention,
)
from drum.builtin.world.scene import COUNTS, Scene, render_scene, sample_scene
from drum.data.example import Example
from drum.lvlm.prompt import ICLPrompt, PromptTemplate, build_prompt
from drum.utils.io import atomic_directory, atomic_write_json

if TYPE_CHECKING:
    from drum.lvlm.hf import HFLVLM

CARD_NAME = "twin_episodes.json"
EPISODES_FILE = "episodes.jsonl"
TASK_MIX = {"vqa": 0.5, "caption": 0.25, "classification": 0.25}
# Share of the non-twin, non-match demonstrations that ask the query's question with another
# answer; the rest are random examples of the task.
MISS_SHARE = 0.6


@dataclass(frozen=True)
class TwinEpisodeConfig:
    """What ``make_twin_episodes`` writes.

    Attributes:
        n_train: episodes.
        min_demos, max_demos: demonstrations per episode (uniform; the twin and the match are
            two of them).
        seed: everything drawn.
        region: ``"attention"`` (least-attended patch of the query image) or ``"random"``.
        image_size, noise_std: the world's rendering (the built-in world's defaults).
        class_attribute: the attribute classification labels name (the world's default).
    """

    n_train: int = 2000
    min_demos: int = 2
    max_demos: int = 6
    seed: int = 0
    region: str = "attention"
    image_size: int = 32
    noise_std: float = 12.0
    class_attribute: str = "shape"

    def __post_init__(self) -> None:
        if self.region not in REGIONS:
            raise ValueError(f"region must be one of {REGIONS}, got {self.region!r}")
        if self.n_train < 1:
            raise ValueError(f"n_train must be >= 1, got {self.n_train}")
        if not 2 <= self.min_demos <= self.max_demos:
            raise ValueError(
                f"need 2 <= min_demos <= max_demos (the twin and the match), got "
                f"{self.min_demos}, {self.max_demos}"
            )


# --------------------------------------------------------------------------- what reveals
def _asked(task: str, qtype: str | None, class_attribute: str) -> tuple[str, ...]:
    """The attributes the query's answer depends on, as far as a demonstration reveals it."""
    if task == "vqa":
        assert qtype is not None
        return (qtype,)
    if task == "caption":  # its nonsense words name colour and shape
        return ("shape", "colour")
    return (class_attribute,)


def _key(scene: Scene, attributes: tuple[str, ...]) -> tuple[str, ...]:
    values = scene.attributes()
    return tuple(str(values[a]) for a in attributes)


def _scene_where(rng: np.random.Generator, wanted: Callable[[Scene], bool]) -> Scene:
    for _ in range(1000):
        scene = sample_scene(rng)
        if wanted(scene):
            return scene
    raise RuntimeError("no scene satisfies the episode's constraint")  # pragma: no cover


def _twin_kinds(task: str, qtype: str | None, scene: Scene, class_attribute: str) -> list[str]:
    if task == "vqa" and qtype == "count":
        kinds = []
        if scene.count < max(COUNTS):
            kinds.append("add")
        if scene.count > min(COUNTS):
            kinds.append("remove")
        return kinds
    return list(_asked(task, qtype, class_attribute))


def twin_of(
    scene: Scene, kind: str, patch: int, rng: np.random.Generator, size: int, noise_std: float
) -> tuple[Scene, np.ndarray, dict[str, Any]]:
    """``scene`` edited by ``kind`` (module docstring): the edited scene, its pixels, the edit."""
    if kind in ("add", "remove"):
        edit = make_edit(scene, kind, patch, rng)
        return edit.scene, render_edit(scene, edit, size, noise_std), {"kind": kind, **edit.detail}
    current = str(scene.attributes()[kind])
    others = [v for v in ANSWER_VALUES[kind] if v != current]
    value = str(others[int(rng.integers(len(others)))])
    edited = replace(scene, **{kind: value})
    detail = {"kind": kind, "from": current, "to": value, "cells": list(scene.cells)}
    return edited, render_scene(edited, size, noise_std), detail


# ----------------------------------------------------------------------------- the episodes
def _text_and_answer(
    task: str, scene: Scene, qtype: str | None, convention: Convention, rng: np.random.Generator
) -> tuple[str, str]:
    if task == "vqa":
        assert qtype is not None
        template = int(rng.integers(len(QUESTION_TEMPLATES[qtype])))
        return question_text(scene, qtype, template), convention.vqa_answer(scene, qtype)
    if task == "caption":
        return CAPTION_PROMPT, convention.caption(scene)
    return CLASSIFICATION_PROMPT, convention.class_label(scene)


@dataclass(frozen=True)
class _Draft:
    task: str
    qtype: str | None
    convention: Convention
    query: Scene
    n_demos: int


def _draft(rng: np.random.Generator, config: TwinEpisodeConfig) -> _Draft:
    task = str(rng.choice(list(TASK_MIX), p=list(TASK_MIX.values())))
    qtype = QUESTION_TYPES[int(rng.integers(len(QUESTION_TYPES)))] if task == "vqa" else None
    convention = sample_convention(rng, class_attribute=config.class_attribute)
    n_demos = int(rng.integers(config.min_demos, config.max_demos + 1))
    return _Draft(task, qtype, convention, sample_scene(rng), n_demos)


def _save(pixels: np.ndarray, path: Path) -> None:
    Image.fromarray(pixels).save(path)


def _example(example_id: str, image: Path, text: str, answer: str, task: str) -> Example:
    return Example(id=example_id, images=(image,), text=text, answers=(answer,), task=task)


def make_twin_episodes(
    out_dir: str | os.PathLike[str],
    config: TwinEpisodeConfig | None = None,
    lvlm: HFLVLM | None = None,
    templates: dict[str, PromptTemplate] | None = None,
) -> Path:
    """Write ``config.n_train`` episodes into ``out_dir`` (module docstring), atomically.

    ``lvlm`` (the world LVLM) chooses the regions when ``config.region == "attention"``;
    ``templates`` (task name -> ``PromptTemplate``; default: the plain one the world tasks use)
    phrase the attention probe's prompt as evaluation will.
    """
    config = config or TwinEpisodeConfig()
    if config.region == "attention" and lvlm is None:
        raise ValueError("region='attention' needs the base LVLM (lvlm=...)")
    templates = templates or {}
    out_dir = Path(out_dir)
    rng = np.random.default_rng([config.seed, 7151])
    drafts = [_draft(rng, config) for _ in range(config.n_train)]
    with atomic_directory(out_dir) as staging:
        images = staging / "images"
        images.mkdir()
        queries = []
        for index, draft in enumerate(drafts):
            path = images / f"{index:05d}_query.png"
            _save(render_scene(draft.query, config.image_size, config.noise_std), path)
            text, answer = _text_and_answer(
                draft.task, draft.query, draft.qtype, draft.convention, rng
            )
            queries.append(_example(f"q{index}", path, text, answer, draft.task))
        if config.region == "attention":
            assert lvlm is not None
            probes = [
                build_prompt([], query, templates.get(draft.task))
                for query, draft in zip(queries, drafts, strict=True)
            ]
            regions = least_attended_regions(lvlm, probes)
        else:
            regions = [int(r) for r in rng.integers(PATCHES, size=len(drafts))]
        with (staging / EPISODES_FILE).open("w", encoding="utf-8") as handle:
            for index, (draft, query, region) in enumerate(
                zip(drafts, queries, regions, strict=True)
            ):
                record = _episode(index, draft, query, region, rng, config, images)
                handle.write(json.dumps(record, sort_keys=True) + "\n")
        card = {
            "config": asdict(config),
            "base": None if lvlm is None else lvlm.fingerprint,
            "episodes": len(drafts),
        }
        atomic_write_json(staging / CARD_NAME, card)
    return out_dir


def _episode(
    index: int,
    draft: _Draft,
    query: Example,
    region: int,
    rng: np.random.Generator,
    config: TwinEpisodeConfig,
    images: Path,
) -> dict[str, Any]:
    asked = _asked(draft.task, draft.qtype, config.class_attribute)
    target = _key(draft.query, asked)
    kinds = _twin_kinds(draft.task, draft.qtype, draft.query, config.class_attribute)
    kind = kinds[int(rng.integers(len(kinds)))]
    twin_scene, twin_pixels, edit = twin_of(
        draft.query, kind, region, rng, config.image_size, config.noise_std
    )
    roles = ["twin", "match"]
    for _ in range(draft.n_demos - 2):
        roles.append("miss" if rng.random() < MISS_SHARE else "random")
    order = [int(i) for i in rng.permutation(len(roles))]
    demos = []
    for slot in order:
        role = roles[slot]
        qtype = draft.qtype
        if role == "twin":
            scene, pixels = twin_scene, twin_pixels
        else:
            if role == "match":
                scene = _scene_where(rng, lambda s: _key(s, asked) == target)
            elif role == "miss":
                scene = _scene_where(rng, lambda s: _key(s, asked) != target)
            else:
                scene = sample_scene(rng)
                if draft.task == "vqa":
                    qtype = QUESTION_TYPES[int(rng.integers(len(QUESTION_TYPES)))]
            pixels = render_scene(scene, config.image_size, config.noise_std)
        path = images / f"{index:05d}_{len(demos)}_{role}.png"
        _save(pixels, path)
        text, answer = _text_and_answer(draft.task, scene, qtype, draft.convention, rng)
        demos.append({"role": role, "image": path.name, "text": text, "answer": answer})
    return {
        "id": f"twin-{index:05d}",
        "task": draft.task,
        "question_type": draft.qtype,
        "query": {"image": Path(query.images[0]).name, "text": query.text},
        "answer": query.answer,
        "demos": demos,
        "region": int(region),
        "edit": edit,
        "twin_answer": next(d["answer"] for d in demos if d["role"] == "twin"),
    }


def episodes_digest(directory: str | os.PathLike[str]) -> str:
    """SHA-256 over what training reads of ``directory``: ``episodes.jsonl`` and every image."""
    directory = Path(directory)
    digest = hashlib.sha256((directory / EPISODES_FILE).read_bytes())
    for path in sorted((directory / "images").iterdir()):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def read_twin_episodes(directory: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The episode records of ``directory`` (``make_twin_episodes``), with a clear error for a
    folder that is not one."""
    directory = Path(directory)
    path = directory / EPISODES_FILE
    if not (directory / CARD_NAME).is_file() or not path.is_file():
        raise FileNotFoundError(f"{directory} holds no twin episodes (make_twin_episodes)")
    records = []
    for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{line_number}: not JSON ({error.msg})") from error
    return records


def load_twin_samples(
    directory: str | os.PathLike[str], templates: dict[str, PromptTemplate] | None = None
) -> list[tuple[ICLPrompt, str]]:
    """``(prompt, answer)`` per episode of ``directory``, the prompt built by ``build_prompt``
    with the task's template (default: the plain one) as ``drum eval`` builds it."""
    directory = Path(directory)
    templates = templates or {}
    images = directory / "images"
    samples = []
    for record in read_twin_episodes(directory):
        task = record["task"]
        demos = [
            _example(f"{record['id']}-{i}", images / d["image"], d["text"], d["answer"], task)
            for i, d in enumerate(record["demos"])
        ]
        query = record["query"]
        query_example = _example(
            f"{record['id']}-q", images / query["image"], query["text"], record["answer"], task
        )
        samples.append((build_prompt(demos, query_example, templates.get(task)), record["answer"]))
    return samples


__all__ = [
    "CARD_NAME",
    "TwinEpisodeConfig",
    "episodes_digest",
    "load_twin_samples",
    "make_twin_episodes",
    "read_twin_episodes",
    "twin_of",
]

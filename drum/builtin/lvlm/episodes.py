"""Training and probe episodes for the built-in LVLM: k demonstrations + a query, under a
freshly sampled convention, so that only the demonstrations can reveal the answer words.

Each demonstration slot is filled by one of several kinds, so that the model meets every
situation retrieval will put it in: a **match** (reveals the query's answer: same question
type and value, same colour and shape, same class), a **miss** (same question type, another
answer: only comparing images tells it from a match), the **query's own image with another
question** (image similarity alone is not enough), or a **random** example.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from drum.builtin.world.language import (
    CAPTION_PROMPT,
    CLASSIFICATION_PROMPT,
    QUESTION_TEMPLATES,
    QUESTION_TYPES,
    Convention,
    plain_convention,
    question_text,
    sample_convention,
)
from drum.builtin.world.scene import Scene
from drum.data.example import Example
from drum.data.jsonl import read_examples
from drum.lvlm.prompt import ICLPrompt, PromptTemplate, build_prompt

TASK_MIX = {"vqa": 0.5, "caption": 0.25, "classification": 0.25}
SLOT_MIX = {"match": 0.2, "miss": 0.5, "same_image": 0.1, "random": 0.2}
# Share of training episodes that hold at least one revealing demonstration: matching the
# query against its demonstrations only pays off, and so is only learned, when one can.
GUARANTEED_MATCH = 0.7


@dataclass(frozen=True)
class Shot:
    """One turn of an episode: which image (a row of the image table), its text, its answer."""

    image: int
    text: str
    answer: str


@dataclass(frozen=True)
class Episode:
    task: str
    demos: tuple[Shot, ...]
    query: Shot


def scene_from_meta(meta: dict) -> Scene:
    return Scene(
        shape=meta["shape"],
        colour=meta["colour"],
        size=meta["size"],
        count=int(meta["count"]),
        cells=tuple(meta.get("cells", ())),
        background=int(meta.get("background", 0)),
        noise_seed=0,
    )


class EpisodeSampler:
    """Draws episodes over a table of scenes (row ``i`` is image ``i``)."""

    def __init__(self, scenes: Sequence[Scene], class_attribute: str = "shape") -> None:
        self.scenes = list(scenes)
        self.class_attribute = class_attribute
        self.rows_with: dict[tuple[str, str], np.ndarray] = {}
        groups: dict[tuple[str, str], list[int]] = defaultdict(list)
        for row, scene in enumerate(self.scenes):
            attributes = scene.attributes()
            for attribute in QUESTION_TYPES:
                groups[(attribute, str(attributes[attribute]))].append(row)
            groups[("look", f"{scene.shape}/{scene.colour}")].append(row)
        self.rows_with = {key: np.array(rows) for key, rows in groups.items()}

    def _row_with(self, rng: np.random.Generator, attribute: str, value: str, avoid: int) -> int:
        """A row whose ``attribute`` is ``value``, other than ``avoid`` when there is one."""
        rows = self.rows_with[(attribute, value)]
        others = rows[rows != avoid]
        return int(others[rng.integers(len(others))]) if len(others) else avoid

    def _vqa_shot(
        self, rng: np.random.Generator, row: int, qtype: str, convention: Convention
    ) -> Shot:
        scene = self.scenes[row]
        template = int(rng.integers(len(QUESTION_TEMPLATES[qtype])))
        return Shot(row, question_text(scene, qtype, template), convention.vqa_answer(scene, qtype))

    def shot(
        self,
        rng: np.random.Generator,
        task: str,
        row: int,
        convention: Convention,
        qtype: str | None = None,
    ) -> Shot:
        scene = self.scenes[row]
        if task == "vqa":
            qtype = qtype or QUESTION_TYPES[int(rng.integers(len(QUESTION_TYPES)))]
            return self._vqa_shot(rng, row, qtype, convention)
        if task == "caption":
            return Shot(row, CAPTION_PROMPT, convention.caption(scene))
        return Shot(row, CLASSIFICATION_PROMPT, convention.class_label(scene))

    def _reveals(self, task: str, demo: Shot, query: Shot) -> bool:
        """Whether ``demo`` shows the convention words the query's answer needs."""
        if task == "caption":  # the nonsense words name colour and shape
            a, b = self.scenes[demo.image], self.scenes[query.image]
            return (a.shape, a.colour) == (b.shape, b.colour)
        return demo.answer == query.answer

    def demo(
        self,
        rng: np.random.Generator,
        kind: str,
        query: Shot,
        query_qtype: str | None,
        task: str,
        convention: Convention,
    ) -> Shot:
        """A demonstration of ``kind`` for ``query`` (``miss``: same question, other answer)."""
        scene = self.scenes[query.image]
        if kind == "miss":
            for _ in range(64):
                row = int(rng.integers(len(self.scenes)))
                shot = (
                    self._vqa_shot(rng, row, query_qtype, convention)
                    if task == "vqa"
                    else self.shot(rng, task, row, convention)
                )
                if not self._reveals(task, shot, query):
                    return shot
            raise RuntimeError("could not draw a non-matching demonstration")
        if task == "vqa":
            assert query_qtype is not None
            if kind == "match":
                value = str(scene.attributes()[query_qtype])
                return self._vqa_shot(
                    rng,
                    self._row_with(rng, query_qtype, value, query.image),
                    query_qtype,
                    convention,
                )
            if kind == "same_image":
                other = [q for q in QUESTION_TYPES if q != query_qtype]
                return self._vqa_shot(
                    rng, query.image, other[int(rng.integers(len(other)))], convention
                )
            return self.shot(rng, task, int(rng.integers(len(self.scenes))), convention)
        if kind == "match":
            if task == "caption":
                row = self._row_with(rng, "look", f"{scene.shape}/{scene.colour}", query.image)
            else:
                value = str(scene.attributes()[self.class_attribute])
                row = self._row_with(rng, self.class_attribute, value, query.image)
            return self.shot(rng, task, row, convention)
        return self.shot(rng, task, int(rng.integers(len(self.scenes))), convention)

    def sample(
        self,
        rng: np.random.Generator,
        n_demos: int,
        task_mix: dict[str, float] | None = None,
        plain_share: float = 0.0,
    ) -> Episode:
        """A training episode: a task drawn from ``task_mix``, ``n_demos`` mixed demos, and a
        fresh nonsense convention (the plain-English one with probability ``plain_share``)."""
        task_mix = task_mix or TASK_MIX
        task = str(rng.choice(list(task_mix), p=list(task_mix.values())))
        if rng.random() < plain_share:
            convention = plain_convention(self.class_attribute)
        else:
            convention = sample_convention(rng, class_attribute=self.class_attribute)
        query_row = int(rng.integers(len(self.scenes)))
        qtype = QUESTION_TYPES[int(rng.integers(len(QUESTION_TYPES)))] if task == "vqa" else None
        query = self.shot(rng, task, query_row, convention, qtype)
        drawn = rng.choice(list(SLOT_MIX), p=list(SLOT_MIX.values()), size=n_demos)
        kinds = [str(kind) for kind in drawn]
        if n_demos and rng.random() < GUARANTEED_MATCH:
            kinds[int(rng.integers(n_demos))] = "match"
        demos = tuple(self.demo(rng, kind, query, qtype, task, convention) for kind in kinds)
        return Episode(task, demos, query)

    def probe(self, rng: np.random.Generator, task: str, kinds: Sequence[str]) -> Episode:
        """An evaluation episode with the given demo kinds, in random order."""
        convention = sample_convention(rng, class_attribute=self.class_attribute)
        query_row = int(rng.integers(len(self.scenes)))
        qtype = QUESTION_TYPES[int(rng.integers(len(QUESTION_TYPES)))] if task == "vqa" else None
        query = self.shot(rng, task, query_row, convention, qtype)
        demos = [self.demo(rng, kind, query, qtype, task, convention) for kind in kinds]
        order = rng.permutation(len(demos))
        return Episode(task, tuple(demos[i] for i in order), query)


def probe_samples(
    world_dir: str | Path,
    task: str,
    kinds: Sequence[str],
    episodes: int,
    seed: int = 0,
    split: str = "test",
    template: PromptTemplate | None = None,
) -> list[tuple[ICLPrompt, str]]:
    """``EpisodeSampler.probe`` episodes over the scenes of the world's ``<task>/<split>.jsonl``
    as ``(prompt, answer)`` pairs any ``LVLM`` can answer (the training probes' episodes read
    vision features instead); each image is that row's file, each prompt built by
    ``build_prompt`` as ``drum eval`` builds it. Deterministic from ``seed`` and the name."""
    examples = read_examples(Path(world_dir) / task / f"{split}.jsonl", verify_images=False)
    sampler = EpisodeSampler([scene_from_meta(example.meta) for example in examples])
    rng = np.random.default_rng([seed, sum(map(ord, f"{task}:{','.join(kinds)}"))])

    def as_example(shot: Shot, name: str) -> Example:
        images = examples[shot.image].images
        return Example(id=name, images=images, text=shot.text, answers=(shot.answer,), task=task)

    samples = []
    for index in range(episodes):
        episode = sampler.probe(rng, task, kinds)
        demos = [as_example(shot, f"p{index}-{i}") for i, shot in enumerate(episode.demos)]
        query = as_example(episode.query, f"p{index}-q")
        samples.append((build_prompt(demos, query, template), episode.query.answer))
    return samples

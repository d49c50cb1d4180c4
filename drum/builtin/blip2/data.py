"""The built-in BLIP-2's evaluation tasks and VPG-C's synthetic edited pairs, as DEMON tasks.

* ``make_heldout_tasks``: one test task per primary, near and far form (``questions``), on
  scenes no training pool holds; what every arm of the measurement answers zero-shot.
* ``make_edited_pairs``: VPG-C's synthetic discriminative data: the synthetic forms with the
  *small* object edited (the other object asked about in ``edit_other``), a train split and a
  test split (in-domain accuracy). Where the edit goes follows the VPG-C paper's rule: each
  pair's small object is placed in the corner whose patches the frozen Q-Former attends least
  (``region="attention"``, the base's ``qformer_cross_attention`` over the unedited image), or
  in a uniformly drawn corner (``region="random"``, the ablation).

Every image is rendered once into its task's ``core/images``; a card records the config (and
for attention regions the base), so an unchanged call reuses what is on disk.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from drum.builtin.blip2.encode import demon_sample, demon_task, pixel_values
from drum.builtin.blip2.questions import FORMS, Question, ScenePool, forms_in
from drum.builtin.blip2.scenes import CORNERS, GRID, render
from drum.demon.format import IMAGES_DIR, DemonTask, write_demon_task
from drum.utils.checkpoint import card_matches
from drum.utils.io import atomic_directory, atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    from drum.lvlm.hf import HFLVLM

DATA_CARD = "builtin_blip2_data.json"
META = "meta.jsonl"
REGIONS = ("attention", "random")
HELDOUT_GROUPS = ("primary", "near", "far")
CORNER_BLOCK = 3  # patches per side of the block a corner's small object covers
MIN_POOL = 200  # scenes: enough for every rejection-drawn form (a same-colour pair is 1 in 6)


def write_questions(
    name: str, split: str, questions: Sequence[Question], pool: ScenePool, root: Path
) -> DemonTask:
    """Render ``questions``' images into ``root/<name>/core/images`` and write the task."""
    images_dir = root / name / IMAGES_DIR
    images_dir.mkdir(parents=True, exist_ok=True)
    samples = []
    for index, question in enumerate(questions):
        paths = []
        for k, key in enumerate(question.images):
            path = images_dir / f"{index:05d}_{k}.png"
            Image.fromarray(render(pool.scene(key))[0]).save(path, format="PNG")
            paths.append(path)
        samples.append(demon_sample(question, paths, index))
    task = demon_task(name, split, samples)
    write_demon_task(task, root)
    metas = [
        {"sample_id": i, "scenes": [pool.scene(k).to_meta() for k in q.images], **q.meta}
        for i, q in enumerate(questions)
    ]
    atomic_write_text(root / name / META, "".join(json.dumps(m) + "\n" for m in metas))
    return task


def read_meta(task_dir: Path) -> list[dict[str, Any]]:
    """Per sample of a task written here, its scenes' ground truth (``meta.jsonl``)."""
    lines = (task_dir / META).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def _questions(form: str, pool: ScenePool, n: int, seed: int, objects: tuple[str, ...]) -> list:
    rng = np.random.default_rng([seed, list(FORMS).index(form)])
    return [FORMS[form].form(rng, pool, objects) for _ in range(n)]


@dataclass(frozen=True)
class HeldoutConfig:
    """``n_test`` samples per held-out form (``n_train`` more for the arm trained on them, what
    the module can carry); ``seed`` draws scenes (pool seeds ``1000 + 2 * seed`` for test and
    one more for train, apart from the base's pools) and questions."""

    n_test: int = 300
    n_train: int = 1000
    seed: int = 0


def make_heldout_tasks(out_dir: str | Path, config: HeldoutConfig | None = None) -> Path:
    """Every primary, near and far form as a task under ``out_dir/{test,train}/<form>``."""
    config = config or HeldoutConfig()
    out_dir = Path(out_dir)
    expected = {"kind": "heldout", "config": asdict(config)}
    if card_matches(out_dir / DATA_CARD, expected):
        return out_dir
    sizes = {"test": config.n_test, "train": config.n_train}
    with atomic_directory(out_dir) as staging:
        groups = {}
        for offset, (split, n) in enumerate(sizes.items()):
            pool = ScenePool(1000 + 2 * config.seed + offset, max(2 * n, MIN_POOL))
            for form in forms_in(*HELDOUT_GROUPS):
                seed = 2 * config.seed + offset
                write_questions(form, split, _questions(form, pool, n, seed, ("small",)),
                                pool, staging / split)  # fmt: skip
                groups[form] = FORMS[form].group
        chance = {form: FORMS[form].chance for form in groups}
        atomic_write_json(staging / DATA_CARD, {**expected, "groups": groups, "chance": chance})
    return out_dir


@dataclass(frozen=True)
class EditedPairsConfig:
    """``n_train`` / ``n_test`` samples per synthetic form; ``region``: ``REGIONS``; ``seed``
    draws scenes (pool seeds ``2000 + 2 * seed`` and one more) and questions."""

    n_train: int = 1500
    n_test: int = 200
    region: str = "attention"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.region not in REGIONS:
            raise ValueError(f"region must be one of {REGIONS}, got {self.region!r}")


def corner_weights(weights: torch.Tensor) -> torch.Tensor:
    """``(N, CORNERS)``: per image the summed patch weight of each corner's block (``weights``
    ``(N, GRID * GRID)``, row-major patches)."""
    grid = weights.reshape(-1, GRID, GRID)
    b, end = CORNER_BLOCK, GRID - CORNER_BLOCK
    blocks = [grid[:, :b, :b], grid[:, :b, end:], grid[:, end:, :b], grid[:, end:, end:]]
    return torch.stack([block.sum(dim=(1, 2)) for block in blocks], dim=1)


@torch.no_grad()
def least_attended_corners(base: HFLVLM, pool: ScenePool) -> list[int]:
    """Per base scene of ``pool``, the corner the base's Q-Former attends least."""
    from drum.lvlm.attention import qformer_cross_attention

    keys = [(i, None, None) for i in range(pool.n)]
    pixels = pixel_values(base.processor.image_processor, pool, keys).to(base.device)
    weights = torch.cat(
        [qformer_cross_attention(base.model, pixels[i : i + 256])[:, 1:].cpu()
         for i in range(0, len(pixels), 256)]
    )  # fmt: skip
    return [int(c) for c in corner_weights(weights).argmin(dim=1)]


def _placed(pool: ScenePool, region: str, seed: int, base: HFLVLM | None) -> ScenePool:
    if region == "random":
        rng = np.random.default_rng([seed, 7, pool.seed])
        return pool.with_corners([int(c) for c in rng.integers(CORNERS, size=pool.n)])
    if base is None:
        raise ValueError("region='attention' needs the base (its Q-Former's attention)")
    return pool.with_corners(least_attended_corners(base, pool))


def make_edited_pairs(
    out_dir: str | Path, config: EditedPairsConfig, base: HFLVLM | None = None
) -> Path:
    """The synthetic forms about small-object edits under ``out_dir/{train,test}/<form>``."""
    out_dir = Path(out_dir)
    expected = {
        "kind": "edited_pairs",
        "config": asdict(config),
        "base": None if config.region == "random" or base is None else base.fingerprint,
    }
    if card_matches(out_dir / DATA_CARD, expected):
        return out_dir
    pools = {
        "train": ScenePool(2000 + 2 * config.seed, config.n_train),
        "test": ScenePool(2001 + 2 * config.seed, config.n_test),
    }
    sizes = {"train": config.n_train, "test": config.n_test}
    corners: dict[str, Any] = {}
    with atomic_directory(out_dir) as staging:
        for split, pool in pools.items():
            placed = _placed(pool, config.region, config.seed, base)
            corners[split] = np.bincount(
                [placed.scene((i, None, None)).corner for i in range(placed.n)], minlength=CORNERS
            ).tolist()
            for form in forms_in("synthetic"):
                seed = config.seed * 2 + (split == "test")
                questions = _questions(form, placed, sizes[split], seed, ("small",))
                write_questions(form, split, questions, placed, staging / split)
        atomic_write_json(staging / DATA_CARD, {**expected, "corner_counts": corners})
    return out_dir

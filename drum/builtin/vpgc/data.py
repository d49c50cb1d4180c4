"""Synthetic discriminative training data for VPG-C on the built-in world, in the DEMON format.

VPG-C is trained on synthetic tasks that make the model compare near-identical images (Li et
al., "synthetic discriminative training"): an image and copies of it that differ in **one
small edited region**, with instructions and answers generated from the edit. The edit goes
where the frozen base attends least (``least_attended_region``), so the adapter has to learn to
look again at what the instruction needs (``region="random"``: a uniform region, the ablation).

=================  ======  =========================================================  =========
task               images  what it asks                                               answer
=================  ======  =========================================================  =========
``WhatDiffers``    2       ``what is different between the two images ?`` (choices)   see below
``WhichHas``       2       ``which image has <value> objects ?`` (``circles``, ...)   Image A/B
``SameOrNot``      2       ``are the two images the same ?`` (balanced)               same/diff
``OddOneOut``      3-4     ``which image is different ?``                             Image A-D
=================  ======  =========================================================  =========

**The edit.** One of: an object's colour, shape or size changes (the object nearest the chosen
region; the world draws every object of a scene alike, so only that object's cell is repainted
from a rendering of the edited scene with the same noise), one object is added (in a free cell
of the region) or removed (the one nearest the region), or one object moves into a free cell
of the region. Outside the edited cells the images are pixel-identical.

**Region.** The built-in CLIP gives a 32-pixel image 5 visual tokens: CLS and the 4 patches
(16 pixels, row-major) of a 2x2 grid. Patch ``p`` covers the cells of the 3x3 grid whose
rows and columns overlap it (``patch_cells``: the centre row and column belong to both halves).

**Answers of ``WhatDiffers``** (a multi-choice task: the frozen base never produced these
phrases, and an adapter that only rewrites visual tokens learns to pick one from a choice list
far more easily than to make the language model say new words): ``the colour``, ``the
shape``, ``the size``, ``the number of objects`` (an object added or removed) and ``one object
moved``: which *kind* of change, never what it changed from and to. The benchmark's
SpotTheEdit answers ``<old> to <new>`` and MovedObject ``<cell> to <cell>``; neither form (nor
any cell name) is an answer here.

**Disjoint from the benchmark** (``drum.builtin.demon.tasks``): no task here asks any
benchmark question or uses any of their instructions; the contexts are new sentences
(``what is different between ...``, ``which image has ...``, ``are the two images the same ?``,
``which image is different ?``); no dialogue, story, cloze, facts or digits; SpotTheEdit /
MovedObject answer forms never appear (above). ``same`` / ``different`` and ``Image A``..``C``
are answer forms the benchmark shares with the generic formats the base was trained on;
``Image D`` (OddOneOut over four images) is one the generic formats never give, as WhichImage
and MissingPanel do: a form, not a task, the benchmark shares. Every
word is in ``drum.builtin.demon.lvlm.base_vocabulary()`` (tested), so nothing becomes
``[UNK]``. Instructions are this module's own (``SYNTHETIC_INSTRUCTIONS``).

Deterministic from the config's seed (and, for ``region="attention"``, the base's weights):
each task draws from ``task_rng(seed, split, name)``. Written like ``make_generic_demon``:
``<out_root>/<split>/<Task>/core/``, built in a staging directory renamed into place.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from drum.builtin.demon.make import task_rng
from drum.builtin.demon.scenes import LETTERS, VALUES, make_scene, word
from drum.builtin.world.language import PLURALS
from drum.builtin.world.scene import GRID, Scene, render_scene
from drum.demon.categories import MULTI_CHOICE
from drum.demon.format import IMAGES_DIR, DemonSample, DemonTask, write_demon_task
from drum.lvlm.attention import patch_attention, patch_grid_attention
from drum.lvlm.prompt import ICLPrompt, ImagePart, TextPart, Turn
from drum.utils.io import atomic_directory, atomic_write_json

if TYPE_CHECKING:
    from drum.lvlm.hf import HFLVLM

SYNTHETIC_CATEGORY = "vpgc_synthetic"
REGIONS = ("attention", "random")
EDIT_KINDS = ("colour", "shape", "size", "add", "remove", "move")
PATCHES = 4  # the 2x2 patch tokens of a built-in image (after its CLS token)
CARD_NAME = "synthetic_vpgc.json"

WHAT_DIFFERS_ANSWERS = {
    "colour": "the colour",
    "shape": "the shape",
    "size": "the size",
    "add": "the number of objects",
    "remove": "the number of objects",
    "move": "one object moved",
}

SYNTHETIC_TASKS: dict[str, tuple[str, str]] = {
    "WhatDiffers": (MULTI_CHOICE, "{image#1} {image#2} what is different between the two images ?"),
    "WhichHas": (MULTI_CHOICE, "which image has {value} ?"),
    "SameOrNot": (MULTI_CHOICE, "{image#1} {image#2} are the two images the same ?"),
    "OddOneOut": (MULTI_CHOICE, "which image is different ?"),
}
"""Task name -> (question type, context template)."""

SYNTHETIC_INSTRUCTIONS: dict[str, tuple[str, ...]] = {
    "WhatDiffers": (
        "look at both pictures and name the property that is different . ",
        "the pictures differ in one place . name the property . ",
        "compare the two pictures . ",
    ),
    "WhichHas": (
        "pick the picture the question names . ",
        "look at both pictures and choose one . ",
        "the pictures differ in one place . choose . ",
    ),
    "SameOrNot": (
        "look at both pictures and answer same or different . ",
        "check whether the pictures match . ",
        "compare the two pictures in each cell . ",
    ),
    "OddOneOut": (
        "one picture differs . pick it . ",
        "find the picture that differs . ",
        "look at all pictures and choose one . ",
    ),
}


@dataclass(frozen=True)
class SyntheticVPGCConfig:
    """The synthetic data: ``n_train`` / ``n_test`` samples per task (``n_test=0``: no
    held-out split), the region rule, the seed and the rendering of the built-in world.
    ``batch_size``: prompts per attention pass (``region="attention"``)."""

    n_train: int = 500
    n_test: int = 0
    seed: int = 0
    region: str = "attention"
    image_size: int = 32
    noise_std: float = 12.0
    batch_size: int = 64

    def __post_init__(self) -> None:
        if self.region not in REGIONS:
            raise ValueError(f"region must be one of {REGIONS}, got {self.region!r}")
        if self.n_train < 1 or self.n_test < 0:
            raise ValueError("n_train must be >= 1 and n_test >= 0")

    def split_sizes(self) -> dict[str, int]:
        sizes = {"train": self.n_train}
        if self.n_test:
            sizes["test"] = self.n_test
        return sizes


# ------------------------------------------------------------------------------ the geometry
def patch_cells(patch: int) -> tuple[int, ...]:
    """The grid cells patch ``patch`` (0..3, row-major 2x2) covers: rows and columns of the
    3x3 grid that overlap its half (the middle row / column overlaps both)."""
    prow, pcol = divmod(patch, 2)
    rows = (0, 1) if prow == 0 else (1, 2)
    cols = (0, 1) if pcol == 0 else (1, 2)
    return tuple(r * GRID + c for r in rows for c in cols)


def _distance(cell: int, patch: int) -> float:
    row, col = divmod(cell, GRID)
    prow, pcol = divmod(patch, 2)
    # In units of the image side: cell centres at (i + 0.5) / 3, patch centres at 1/4, 3/4.
    return float(
        ((row + 0.5) / 3 - (prow * 2 + 1) / 4) ** 2 + ((col + 0.5) / 3 - (pcol * 2 + 1) / 4) ** 2
    )


def _adjacent(a: int, b: int) -> bool:
    (ra, ca), (rb, cb) = divmod(a, GRID), divmod(b, GRID)
    return abs(ra - rb) + abs(ca - cb) == 1


def _free_cells(cells: Sequence[int], patch: int) -> list[int]:
    """Free cells apart from ``cells`` (no side by side), those of ``patch`` first."""
    free = [
        c for c in range(GRID * GRID) if c not in cells and not any(_adjacent(c, o) for o in cells)
    ]
    inside = [c for c in free if c in patch_cells(patch)]
    return inside or sorted(free, key=lambda c: _distance(c, patch))


def _nearest(cells: Sequence[int], patch: int) -> int:
    return min(cells, key=lambda c: (_distance(c, patch), c))


def _cell_box(cell: int, size: int) -> tuple[slice, slice]:
    row, col = divmod(cell, GRID)
    side = size / GRID
    rows = slice(int(np.floor(row * side)), int(np.ceil((row + 1) * side)))
    cols = slice(int(np.floor(col * side)), int(np.ceil((col + 1) * side)))
    return rows, cols


# --------------------------------------------------------------------------------- the edits
@dataclass(frozen=True)
class Edit:
    """One local edit: its kind, the scene it yields (its ground truth where it is a scene
    edit) and the cells whose pixels come from that scene's rendering."""

    kind: str
    scene: Scene
    cells: tuple[int, ...]
    detail: dict[str, Any]


def _move_options(scene: Scene, patch: int) -> dict[int, list[int]]:
    """Per object that can move, the cells it can move to (region first, as ``_free_cells``)."""
    options = {}
    for source in scene.cells:
        rest = [c for c in scene.cells if c != source]
        free = [c for c in _free_cells(rest, patch) if c != source]
        if free:
            options[source] = free
    return options


def possible_edits(scene: Scene, patch: int) -> list[str]:
    kinds = ["colour", "shape", "size"]
    free = _free_cells(scene.cells, patch)
    if scene.count < max(VALUES["count"]) and free:
        kinds.append("add")
    if scene.count > 1:
        kinds.append("remove")
    if _move_options(scene, patch):
        kinds.append("move")
    return kinds


def make_edit(scene: Scene, kind: str, patch: int, rng: np.random.Generator) -> Edit:
    """``scene`` edited by ``kind`` at the region of ``patch`` (module docstring)."""
    if kind in ("colour", "shape", "size"):
        current = scene.attributes()[kind]
        others = [v for v in VALUES[kind] if v != current]
        value = others[int(rng.integers(len(others)))]
        cell = _nearest(scene.cells, patch)
        edited = replace(scene, **{kind: str(value)})
        return Edit(kind, edited, (cell,), {"cell": cell, "from": current, "to": value})
    if kind == "add":
        free = _free_cells(scene.cells, patch)
        cell = free[int(rng.integers(len(free)))]
        edited = replace(scene, count=scene.count + 1, cells=tuple(sorted([*scene.cells, cell])))
        return Edit(kind, edited, (cell,), {"cell": cell})
    if kind == "remove":
        cell = _nearest(scene.cells, patch)
        cells = tuple(c for c in scene.cells if c != cell)
        return Edit(
            kind, replace(scene, count=scene.count - 1, cells=cells), (cell,), {"cell": cell}
        )
    if kind == "move":
        options = _move_options(scene, patch)
        sources = sorted(options)
        source = sources[int(rng.integers(len(sources)))]
        rest = [c for c in scene.cells if c != source]
        free = options[source]
        target = free[int(rng.integers(len(free)))]
        edited = replace(scene, cells=tuple(sorted([*rest, target])))
        return Edit(kind, edited, (source, target), {"from": source, "to": target})
    raise ValueError(f"unknown edit kind {kind!r}")


def render_edit(scene: Scene, edit: Edit, size: int, noise_std: float) -> np.ndarray:
    """``scene``'s rendering with the edited cells repainted from ``edit.scene``'s."""
    pixels = render_scene(scene, size, noise_std)
    edited = render_scene(edit.scene, size, noise_std)
    for cell in edit.cells:
        rows, cols = _cell_box(cell, size)
        pixels[rows, cols] = edited[rows, cols]
    return pixels


# ------------------------------------------------------------------------- attention region
def least_attended_regions(
    lvlm: HFLVLM, prompts: Sequence[ICLPrompt], batch_size: int = 64
) -> list[int]:
    """Per prompt, the patch (0..3) of its first image its last token attends least (the CLS
    token, the image's first visual token, is not a region); for BLIP-2, the
    quarter whose patches the Q-Former's queries attend least."""
    if lvlm.family.qformer:
        # Its visual tokens are Q-Former queries, not patches: the Q-Former's cross-attention
        # over the vision tower's patches (``drum.lvlm.attention``), pooled into the
        # image's four quarters (the world's 2x2 patch positions).
        grid = _vision_grid(lvlm)
        if grid % 2:
            raise ValueError(f"{lvlm.name}: a {grid}x{grid} patch grid has no 2x2 quarters")
        half = grid // 2  # the side of a quarter, in patches
        weights = patch_grid_attention(lvlm, prompts, grid, batch_size)
        quarters = weights.reshape(-1, 2, half, 2, half).sum(dim=(2, 4)).reshape(-1, PATCHES)
        return [int(i) for i in quarters.argmin(dim=1)]
    regions: list[int] = []
    for start in range(0, len(prompts), batch_size):
        weights = patch_attention(lvlm, prompts[start : start + batch_size])
        if weights.shape[1] != PATCHES + 1:
            raise ValueError(
                f"{lvlm.name}: {weights.shape[1]} visual tokens per image, region choice "
                f"expects the built-in CLS + {PATCHES} patches"
            )
        regions += [int(i) for i in weights[:, 1:].argmin(dim=1)]
    return regions


def _vision_grid(lvlm: HFLVLM) -> int:
    vision = lvlm.model.config.vision_config
    return int(vision.image_size) // int(vision.patch_size)


def least_attended_region(lvlm: HFLVLM, prompt: ICLPrompt) -> int:
    """The patch index (0..3, row-major 2x2) of ``prompt``'s first image that its last token
    (the instruction's end) attends least, averaged over heads and layers."""
    return least_attended_regions(lvlm, [prompt])[0]


# ------------------------------------------------------------------------------- the samples
@dataclass(frozen=True)
class _Draft:
    """A sample before its region is known."""

    scene: Scene
    instruction_id: int
    n_images: int
    extra: dict[str, Any]


def _draft(name: str, rng: np.random.Generator) -> _Draft:
    fixed: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    if name == "WhichHas":
        extra["attribute"] = ["count", "colour", "shape", "size"][int(rng.integers(4))]
        if extra["attribute"] != "count":
            fixed["count"] = 1  # one object: its value is the image's
    scene = make_scene(rng, **fixed)
    n_images = int(rng.integers(3, 5)) if name == "OddOneOut" else 2
    instruction_id = int(rng.integers(len(SYNTHETIC_INSTRUCTIONS[name])))
    if name == "SameOrNot":
        extra["same"] = bool(rng.integers(2))
    extra["order"] = int(rng.integers(n_images))  # where the edited image goes
    return _Draft(scene, instruction_id, n_images, extra)


def _probe_prompt(name: str, draft: _Draft, path: Path) -> ICLPrompt:
    """The instruction and question over the unedited image: what the base reads before
    choosing where to look."""
    question = SYNTHETIC_TASKS[name][1].replace("{value}", "objects")
    question = " ".join(w for w in question.split() if not w.startswith("{image#"))
    instruction = SYNTHETIC_INSTRUCTIONS[name][draft.instruction_id]
    return ICLPrompt((), Turn((TextPart(instruction), ImagePart(path), TextPart(question))))


def _choose_kind(name: str, draft: _Draft, patch: int, rng: np.random.Generator) -> str:
    kinds = possible_edits(draft.scene, patch)
    if name == "WhichHas":
        attribute = draft.extra["attribute"]
        if attribute == "count":
            kinds = [k for k in kinds if k in ("add", "remove")]
        else:
            kinds = [attribute]
    return kinds[int(rng.integers(len(kinds)))]


def _value_words(attribute: str, scene: Scene) -> str:
    if attribute == "count":
        return f"{word('count', scene.count)} objects"
    if attribute == "shape":
        return PLURALS[scene.shape] if scene.count > 1 else f"a {scene.shape}"
    return f"{scene.attributes()[attribute]} objects"


def _finish(
    name: str, draft: _Draft, edit: Edit, rng: np.random.Generator
) -> tuple[str, str, tuple[str, ...] | None, list[bool]]:
    """Context, response, choices, and per image whether it is the edited one."""
    order = draft.extra["order"]
    edited = [k == order for k in range(draft.n_images)]
    template = SYNTHETIC_TASKS[name][1]
    if name == "WhatDiffers":
        forms = sorted(set(WHAT_DIFFERS_ANSWERS.values()))
        listed = tuple(forms[int(i)] for i in rng.permutation(len(forms)))
        return template, WHAT_DIFFERS_ANSWERS[edit.kind], listed, edited
    if name == "SameOrNot":
        same = draft.extra["same"]
        return (
            template,
            "same" if same else "different",
            ("same", "different"),
            [e and not same for e in edited],
        )
    choices = tuple(f"Image {LETTERS[k]}: {{image#{k + 1}}}" for k in range(draft.n_images))
    if name == "OddOneOut":
        return template, f"Image {LETTERS[order]}", choices, edited
    # WhichHas: ask for the value of the edited image or of the original, at random.
    attribute = draft.extra["attribute"]
    ask_edited = bool(rng.integers(2))
    scene = edit.scene if ask_edited else draft.scene
    target = order if ask_edited else 1 - order
    context = template.format(value=_value_words(attribute, scene))
    return context, f"Image {LETTERS[target]}", choices, edited


def generate_synthetic_task(
    name: str,
    split: str,
    config: SyntheticVPGCConfig,
    split_root: Path,
    lvlm: HFLVLM | None = None,
) -> tuple[DemonTask, list[dict[str, Any]]]:
    """Draw and render one task's split under ``split_root/<name>/`` (three passes: draw the
    scenes, choose each sample's region, edit and render); its task and per-sample metadata."""
    if config.region == "attention" and lvlm is None:
        raise ValueError("region='attention' needs the base LVLM (lvlm=...)")
    rng = task_rng(config.seed, split, name)
    n = config.split_sizes()[split]
    images_dir = split_root / name / IMAGES_DIR
    images_dir.mkdir(parents=True, exist_ok=True)
    drafts = [_draft(name, rng) for _ in range(n)]
    if config.region == "attention":
        assert lvlm is not None
        probe_dir = split_root / f".{name}.probe"
        probe_dir.mkdir(parents=True, exist_ok=True)
        prompts = []
        for index, draft in enumerate(drafts):
            path = probe_dir / f"{index:05d}.png"
            pixels = render_scene(draft.scene, config.image_size, config.noise_std)
            Image.fromarray(pixels).save(path, format="PNG")
            prompts.append(_probe_prompt(name, draft, path))
        patches = least_attended_regions(lvlm, prompts, config.batch_size)
        for path in probe_dir.iterdir():
            path.unlink()
        probe_dir.rmdir()
    else:
        patches = [int(p) for p in rng.integers(PATCHES, size=n)]
    samples, metas = [], []
    for index, (draft, patch) in enumerate(zip(drafts, patches, strict=True)):
        kind = _choose_kind(name, draft, patch, rng)
        edit = make_edit(draft.scene, kind, patch, rng)
        context, response, choices, edited = _finish(name, draft, edit, rng)
        original = render_scene(draft.scene, config.image_size, config.noise_std)
        changed = render_edit(draft.scene, edit, config.image_size, config.noise_std)
        names = [f"{index:05d}_{k}.png" for k in range(draft.n_images)]
        paths = [images_dir / image_name for image_name in names]
        for is_edited, path in zip(edited, paths, strict=True):
            Image.fromarray(changed if is_edited else original).save(path, format="PNG")
        samples.append(
            synthetic_sample(index, draft.instruction_id, context, paths, choices, response)
        )
        metas.append(
            {
                "sample_id": index,
                "scene": {**draft.scene.to_meta(), "noise_seed": draft.scene.noise_seed},
                "patch": patch,
                "edit": {"kind": edit.kind, **edit.detail},
                "edited_images": [k for k, e in enumerate(edited) if e],
            }
        )
    question_type = SYNTHETIC_TASKS[name][0]
    instructions = SYNTHETIC_INSTRUCTIONS[name]
    return DemonTask(name, name, split, instructions, question_type, tuple(samples)), metas


def synthetic_sample(
    index: int,
    instruction_id: int,
    context: str,
    paths: Sequence[Path],
    choices: tuple[str, ...] | None,
    response: str,
) -> DemonSample:
    """Sample ``index`` of a synthetic task, its images at ``paths`` (named ``<index>_<k>.png``);
    a choice list's context ends with a space, as the release's multi-choice contexts do."""
    return DemonSample(
        sample_id=index,
        instruction_id=instruction_id,
        context=context + (" " if choices else ""),
        images=tuple(paths),
        choices=choices,
        response=response,
        image_names=tuple(Path(path).name for path in paths),
    )


def make_synthetic_vpgc(
    out_root: str | os.PathLike[str],
    config: SyntheticVPGCConfig | None = None,
    lvlm: HFLVLM | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[Path]:
    """Write every synthetic task (``SYNTHETIC_TASKS``) for the config's splits under
    ``<out_root>/<split>/<Task>/core/`` (plus ``meta.jsonl`` per task and the card
    ``synthetic_vpgc.json``), atomically; the task folders, train first. ``lvlm``: the base
    whose attention chooses the regions (``region="attention"``).

    Example::

        dirs = make_synthetic_vpgc("runs/vpgc/data", SyntheticVPGCConfig(), HFLVLM(base))
    """
    config = config or SyntheticVPGCConfig()
    card = {
        "config": asdict(config),
        "base": None if lvlm is None else lvlm.fingerprint,
        "tasks": {n: {"question_type": q} for n, (q, _) in SYNTHETIC_TASKS.items()},
    }

    def generate(name: str, split: str, split_root: Path) -> tuple[DemonTask, list[dict]]:
        return generate_synthetic_task(name, split, config, split_root, lvlm)

    return write_synthetic_tasks(
        out_root, tuple(config.split_sizes()), tuple(SYNTHETIC_TASKS), generate, card, progress
    )


def write_synthetic_tasks(
    out_root: str | os.PathLike[str],
    splits: Sequence[str],
    names: Sequence[str],
    generate: Callable[[str, str, Path], tuple[DemonTask, list[dict[str, Any]]]],
    card: dict[str, Any],
    progress: Callable[[str], None] | None = None,
) -> list[Path]:
    """Write ``generate(name, split, split_root)``'s task and per-sample metadata for every
    split and task name under ``<out_root>/<split>/<Task>/core/`` (``meta.jsonl`` beside) and
    ``card`` as ``synthetic_vpgc.json``, all in a staging directory renamed into place; the
    task folders, in order. The world and photo data share it."""
    out_root = Path(out_root)
    folders = []
    with atomic_directory(out_root) as staging:
        for split in splits:
            for name in names:
                if progress is not None:
                    progress(f"{split}/{name}")
                task, metas = generate(name, split, staging / split)
                task_dir = write_demon_task(task, staging / split)
                lines = "".join(json.dumps(m, sort_keys=True) + "\n" for m in metas)
                (task_dir / "meta.jsonl").write_text(lines, encoding="utf-8")
                folders.append(out_root / split / name)
        atomic_write_json(staging / CARD_NAME, card)
    return folders

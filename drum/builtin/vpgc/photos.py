"""Synthetic discriminative data for VPG-C on real-size images: edited photos, DEMON format.

The built-in world's scenes are 32 px; a real base (BLIP-2, LLaVA, Qwen2-VL at 224-448 px)
would read them as a few blurred squares. Here each scene is a random square crop of one of
scikit-image's bundled photos (``available_photos``: the ones the installed ``skimage.data``
holds on disk, so nothing is downloaded), optionally mirrored, resized to the base's image size.
Its copies differ in **one small edited region**, one of:

=================  ==============================================================
``pasted``         a patch of another photo (or of another place of the same scene) pasted in
``recoloured``     hue rotated by 90-270 degrees, saturation raised to at least 0.45 (PIL HSV)
``blurred``        Gaussian blur, ``sigma = max(1, side / 8)`` pixels
=================  ==============================================================

Outside the region the images are pixel-identical (tested); an edit must change the region
by at least ``min_change`` grey levels on average (else the next kind is tried), so every
"different" answer is visible.

**Region** (``PhotoGeometry``): the image is the vision tower's ``grid x grid`` patches; a
region is a ``block x block`` square of them (default ``block = max(1, round(grid / 5))``:
3 x 3 of BLIP-2's 16 x 16, 3.5% of the image; 5 x 5 of LLaVA-1.5's 24 x 24, 4.3%), its corner
at any patch. ``region="attention"``: the least-attended square (``drum.lvlm.attention``:
the Q-Former's cross-attention for BLIP-2, the instruction's last token's attention to the
visual tokens otherwise) over the unedited image under the sample's instruction and question;
``region="random"``: uniform, the ablation.

=================  ======  ==================================================  ===============
task               images  context                                             answer
=================  ======  ==================================================  ===============
``WhatDiffers``    2       ``what is different between image 1 and image 2 ?``  ``a pasted patch``
                           + the four choices                                  ... or ``none``
``WhichHas``       2       ``which image has a blurred patch ?`` (any kind)    Image A/B
``SameOrNot``      2       ``are the two images the same ?`` (exactly half)    same/different
``OddOneOut``      3-4     ``which image differs from the others ?``           Image A-D
=================  ======  ==================================================  ===============

``WhatDiffers`` answers ``none`` for identical copies (``none_rate`` of its samples). In
``WhichHas`` the other image is the unedited scene or, half the time, the scene with another
kind of edit in the same region, so the kind has to be told apart, not just the change.

Deterministic from the seed (and, for ``region="attention"``, the base's weights): each task
draws from ``task_rng(seed, split, name)``; written like the world data
(``drum.builtin.vpgc.data``, the same writer and layout, ``meta.jsonl`` per task, the card
``synthetic_vpgc.json`` with ``"source": "photos"``), staged and renamed into place.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from drum.builtin.demon.make import task_rng
from drum.builtin.demon.scenes import LETTERS
from drum.builtin.vpgc.data import (
    CARD_NAME,
    REGIONS,
    synthetic_sample,
    write_synthetic_tasks,
)
from drum.builtin.vpgc.edits import (
    EDIT_KINDS,
    PhotoScene,
    available_photos,
    draw_scene,
    visible_edit,
)
from drum.demon.categories import MULTI_CHOICE
from drum.demon.format import IMAGES_DIR, DemonTask
from drum.lvlm.attention import least_attended_blocks, patch_grid_attention
from drum.lvlm.prompt import ICLPrompt, ImagePart, TextPart, Turn
from drum.utils.checkpoint import card_matches

if TYPE_CHECKING:
    from drum.lvlm.hf import HFLVLM

SOURCE = "photos"
MAX_IMAGE_SIZE = 448  # the side used when a base's tower has no fixed image size (Qwen2-VL)

EDIT_ANSWERS = {kind: f"a {kind} patch" for kind in EDIT_KINDS}
NONE_ANSWER = "none"

PHOTO_TASKS: dict[str, tuple[str, str]] = {
    "WhatDiffers": (
        MULTI_CHOICE,
        "{image#1} {image#2} what is different between image 1 and image 2 ?",
    ),
    "WhichHas": (MULTI_CHOICE, "which image has {value} ?"),
    "SameOrNot": (MULTI_CHOICE, "{image#1} {image#2} are the two images the same ?"),
    "OddOneOut": (MULTI_CHOICE, "which image differs from the others ?"),
}
"""Task name -> (question type, context template)."""

PHOTO_INSTRUCTIONS: dict[str, tuple[str, ...]] = {
    "WhatDiffers": (
        "the two photos may differ in one small patch . say how , or none . ",
        "compare the two photos and name the change . ",
        "look closely at both photos . ",
    ),
    "WhichHas": (
        "one photo has the patch the question names . pick it . ",
        "look at both photos and choose one . ",
        "compare the photos patch by patch . ",
    ),
    "SameOrNot": (
        "look at both photos and answer same or different . ",
        "check whether the two photos match everywhere . ",
        "compare the photos patch by patch . ",
    ),
    "OddOneOut": (
        "all photos but one are the same . pick the odd one . ",
        "find the photo with a changed patch . ",
        "look at every photo and choose one . ",
    ),
}


@dataclass(frozen=True)
class PhotoGeometry:
    """The images' side ``image_size`` (pixels), the vision tower's ``patch_size`` and the
    region's side ``block`` (patches)."""

    image_size: int
    patch_size: int
    block: int

    def __post_init__(self) -> None:
        if self.patch_size < 1 or self.image_size % self.patch_size:
            raise ValueError(
                f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}"
            )
        if not 1 <= self.block <= self.grid:
            raise ValueError(f"block must be in [1, {self.grid}] patches, got {self.block}")

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    def box(self, corner: tuple[int, int]) -> tuple[slice, slice]:
        """The pixel rows and columns of the region whose top-left patch is ``corner``."""
        top, left = (c * self.patch_size for c in corner)
        side = self.block * self.patch_size
        return slice(top, top + side), slice(left, left + side)


def default_block(grid: int) -> int:
    """``max(1, round(grid / 5))`` patches: a region of about 4% of the image."""
    return max(1, round(grid / 5))


def base_image_geometry(lvlm: HFLVLM) -> tuple[int, int]:
    """``(image_size, patch_size)`` of the base's vision tower: its config's ``image_size``
    (BLIP-2, LLaVA, Idefics3); for a tower without one (Qwen2-VL's dynamic resolution) the
    largest multiple of ``patch * merge`` within the image processor's ``max_pixels`` (Qwen's
    ``size["longest_edge"]``) and ``MAX_IMAGE_SIZE``."""
    vision = lvlm.model.config.vision_config
    patch = int(vision.patch_size)
    size = getattr(vision, "image_size", None)
    if size:
        return int(size), patch
    unit = patch * int(getattr(vision, "spatial_merge_size", 1) or 1)
    image_processor = getattr(lvlm.processor, "image_processor", lvlm.processor)
    # Qwen2-VL's processors keep max_pixels as an attribute or as size["longest_edge"].
    size_dict = getattr(image_processor, "size", None)
    max_pixels = (
        getattr(image_processor, "max_pixels", None)
        or getattr(size_dict, "longest_edge", None)
        or MAX_IMAGE_SIZE**2
    )
    side = min(MAX_IMAGE_SIZE, int(np.sqrt(max_pixels)))
    return max(unit, side // unit * unit), patch


@dataclass(frozen=True)
class PhotoVPGCConfig:
    """The photo data: ``n_train`` / ``n_test`` samples per task, the region rule, the seed,
    the photos (``None``: every available one; at least two), ``image_size`` / ``patch_size``
    (``None``: the base's, ``base_image_geometry``), ``block`` (``None``: ``default_block``),
    the smallest mean change of a visible edit (grey levels), the share of ``none`` answers in
    ``WhatDiffers``, the crop's smallest side (share of the photo's shorter side), and prompts
    per attention pass."""

    n_train: int = 500
    n_test: int = 0
    seed: int = 0
    region: str = "attention"
    photos: tuple[str, ...] | None = None
    image_size: int | None = None
    patch_size: int | None = None
    block: int | None = None
    min_change: float = 8.0
    none_rate: float = 0.25
    min_crop: float = 0.4
    batch_size: int = 16

    def __post_init__(self) -> None:
        if self.region not in REGIONS:
            raise ValueError(f"region must be one of {REGIONS}, got {self.region!r}")
        if self.n_train < 1 or self.n_test < 0:
            raise ValueError("n_train must be >= 1 and n_test >= 0")
        if self.photos is not None:
            available = available_photos()
            missing = [p for p in self.photos if p not in available]
            if missing:
                raise ValueError(
                    f"photos {missing} are not bundled with the installed scikit-image "
                    f"(available: {', '.join(available)})"
                )
            if len(set(self.photos)) < 2:
                raise ValueError("photos needs at least two distinct photos (pasted patches)")
        for name in ("image_size", "patch_size", "block"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if not 0 <= self.none_rate < 1 or not 0 < self.min_crop <= 1:
            raise ValueError("none_rate must be in [0, 1) and min_crop in (0, 1]")
        if self.min_change < 0 or self.batch_size < 1:
            raise ValueError("min_change must be >= 0 and batch_size >= 1")

    def split_sizes(self) -> dict[str, int]:
        sizes = {"train": self.n_train}
        if self.n_test:
            sizes["test"] = self.n_test
        return sizes

    def photo_names(self) -> tuple[str, ...]:
        names = self.photos if self.photos is not None else available_photos()
        if len(set(names)) < 2:
            raise ValueError(f"fewer than two photos available in scikit-image: {names}")
        return tuple(names)

    def geometry(self, lvlm: HFLVLM | None) -> PhotoGeometry:
        """The config's sizes, the base's where ``None``."""
        size, patch = self.image_size, self.patch_size
        if size is None or patch is None:
            if lvlm is None:
                raise ValueError("image_size and patch_size are needed without a base (lvlm)")
            base_size, base_patch = base_image_geometry(lvlm)
            size, patch = size or base_size, patch or base_patch
        if size % patch:
            raise ValueError(f"image_size {size} is not a multiple of patch_size {patch}")
        block = self.block if self.block is not None else default_block(size // patch)
        return PhotoGeometry(size, patch, block)


# ------------------------------------------------------------------------------- the samples
def png_bytes(pixels: np.ndarray) -> bytes:
    """``pixels`` as PNG (lossless, so unedited pixels stay identical; zlib level 1: the
    training data is written once and read a few times, speed over size)."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


@dataclass(frozen=True)
class _Draft:
    scene: PhotoScene
    instruction_id: int
    n_images: int
    extra: dict[str, Any]


def _drafts(name: str, n: int, rng: np.random.Generator, config: PhotoVPGCConfig) -> list[_Draft]:
    photos = config.photo_names()
    # SameOrNot: exactly half the samples "same" (the rest "different"), in a random order.
    same = rng.permutation(np.arange(n) < n // 2) if name == "SameOrNot" else np.zeros(n, bool)
    drafts = []
    for index in range(n):
        scene = draw_scene(rng, photos, config.min_crop)
        n_images = int(rng.integers(3, 5)) if name == "OddOneOut" else 2
        extra: dict[str, Any] = {"order": int(rng.integers(n_images))}
        if name == "SameOrNot":
            extra["same"] = bool(same[index])
        if name == "WhatDiffers":
            extra["none"] = bool(rng.random() < config.none_rate)
        if name == "WhichHas":
            extra["other_edited"] = bool(rng.integers(2))
        instruction_id = int(rng.integers(len(PHOTO_INSTRUCTIONS[name])))
        drafts.append(_Draft(scene, instruction_id, n_images, extra))
    return drafts


def _probe_prompt(name: str, draft: _Draft, path: Path) -> ICLPrompt:
    """The instruction and question over the unedited image (what the base reads before
    choosing where to look)."""
    question = PHOTO_TASKS[name][1].replace("{value}", "a changed patch")
    question = " ".join(w for w in question.split() if not w.startswith("{image#"))
    instruction = PHOTO_INSTRUCTIONS[name][draft.instruction_id]
    return ICLPrompt((), Turn((TextPart(instruction), ImagePart(path), TextPart(question))))


def _corners(
    name: str,
    drafts: Sequence[_Draft],
    geometry: PhotoGeometry,
    config: PhotoVPGCConfig,
    rng: np.random.Generator,
    work_dir: Path,
    lvlm: HFLVLM | None,
) -> list[tuple[int, int]]:
    side = geometry.grid - geometry.block + 1
    if config.region == "random":
        return [divmod(int(i), side) for i in rng.integers(side * side, size=len(drafts))]
    if lvlm is None:
        raise ValueError("region='attention' needs the base LVLM (lvlm=...)")
    probe_dir = work_dir / f".{name}.probe"
    probe_dir.mkdir(parents=True, exist_ok=True)
    prompts = []
    for index, draft in enumerate(drafts):
        path = probe_dir / f"{index:05d}.png"
        Image.fromarray(draft.scene.render(geometry.image_size)).save(path, format="PNG")
        prompts.append(_probe_prompt(name, draft, path))
    weights = patch_grid_attention(lvlm, prompts, geometry.grid, config.batch_size)
    for path in probe_dir.iterdir():
        path.unlink()
    probe_dir.rmdir()
    return least_attended_blocks(weights, geometry.block)


def _images(
    name: str,
    draft: _Draft,
    original: np.ndarray,
    box: tuple[slice, slice],
    rng: np.random.Generator,
    config: PhotoVPGCConfig,
) -> tuple[str, tuple[str, ...] | None, list[np.ndarray], dict[str, Any]]:
    """Context, choices, the images in order and the edit's metadata (``response`` inside)."""
    photos = config.photo_names()
    order, n_images = draft.extra["order"], draft.n_images
    kinds = [EDIT_KINDS[int(i)] for i in rng.permutation(len(EDIT_KINDS))]
    kind, edited, detail = visible_edit(
        original, kinds, box, rng, draft.scene, photos, config.min_change
    )
    images = [original] * n_images
    kinds_of: list[str | None] = [None] * n_images
    template = PHOTO_TASKS[name][1]
    letters = tuple(f"Image {LETTERS[k]}: {{image#{k + 1}}}" for k in range(n_images))
    choices: tuple[str, ...] | None
    if name == "WhatDiffers":
        forms = [*EDIT_ANSWERS.values(), NONE_ANSWER]
        choices = tuple(forms[int(i)] for i in rng.permutation(len(forms)))
        if draft.extra["none"]:
            response, context = NONE_ANSWER, template
        else:
            images[order], kinds_of[order] = edited, kind
            response, context = EDIT_ANSWERS[kind], template
    elif name == "SameOrNot":
        choices = ("same", "different")
        context = template
        if draft.extra["same"]:
            response = "same"
        else:
            images[order], kinds_of[order] = edited, kind
            response = "different"
    elif name == "OddOneOut":
        choices, context = letters, template
        images[order], kinds_of[order] = edited, kind
        response = f"Image {LETTERS[order]}"
    elif name == "WhichHas":
        choices = letters
        images[order], kinds_of[order] = edited, kind
        if draft.extra["other_edited"]:
            rest = [k for k in kinds if k != kind]
            other_kind, other, other_detail = visible_edit(
                original, rest, box, rng, draft.scene, photos, config.min_change
            )
            images[1 - order], kinds_of[1 - order] = other, other_kind
            detail = {**detail, "other": {"kind": other_kind, **other_detail}}
        context = template.format(value=EDIT_ANSWERS[kind])
        response = f"Image {LETTERS[order]}"
    else:
        raise ValueError(f"unknown photo task {name!r}")
    if not any(kinds_of):  # WhatDiffers' "none": identical copies, no edit shown
        kind, detail = None, {}
    meta = {"kind": kind, **detail, "response": response, "image_kinds": kinds_of}
    return context, choices, images, meta


def generate_photo_task(
    name: str,
    split: str,
    config: PhotoVPGCConfig,
    split_root: Path,
    lvlm: HFLVLM | None = None,
) -> tuple[DemonTask, list[dict[str, Any]]]:
    """Draw, place and render one task's split under ``split_root/<name>/`` (three passes:
    draw the scenes, choose each sample's region, edit and write); the task and per-sample
    metadata."""
    if name not in PHOTO_TASKS:
        raise ValueError(f"unknown photo task {name!r}; expected one of {list(PHOTO_TASKS)}")
    geometry = config.geometry(lvlm)
    rng = task_rng(config.seed, split, name)
    n = config.split_sizes()[split]
    images_dir = split_root / name / IMAGES_DIR
    images_dir.mkdir(parents=True, exist_ok=True)
    drafts = _drafts(name, n, rng, config)
    corners = _corners(name, drafts, geometry, config, rng, split_root, lvlm)
    samples, metas = [], []
    for index, (draft, corner) in enumerate(zip(drafts, corners, strict=True)):
        original = draft.scene.render(geometry.image_size)
        box = geometry.box(corner)
        context, choices, images, edit = _images(name, draft, original, box, rng, config)
        names = [f"{index:05d}_{k}.png" for k in range(draft.n_images)]
        paths = [images_dir / image_name for image_name in names]
        encoded: dict[int, bytes] = {}  # the copies of one array are encoded once
        for pixels, path in zip(images, paths, strict=True):
            if id(pixels) not in encoded:
                encoded[id(pixels)] = png_bytes(pixels)
            path.write_bytes(encoded[id(pixels)])
        response = edit.pop("response")
        samples.append(
            synthetic_sample(index, draft.instruction_id, context, paths, choices, response)
        )
        rows, cols = box
        metas.append(
            {
                "sample_id": index,
                "scene": asdict(draft.scene),
                "region": {
                    "corner": list(corner),
                    "block": geometry.block,
                    "box": [rows.start, cols.start, rows.stop - rows.start],
                },
                "edit": edit,
                "edited_images": [k for k, kind in enumerate(edit["image_kinds"]) if kind],
            }
        )
    instructions = PHOTO_INSTRUCTIONS[name]
    question_type = PHOTO_TASKS[name][0]
    return DemonTask(name, name, split, instructions, question_type, tuple(samples)), metas


def make_photo_vpgc(
    out_root: str | os.PathLike[str],
    config: PhotoVPGCConfig | None = None,
    lvlm: HFLVLM | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[Path]:
    """Write every photo task (``PHOTO_TASKS``) for the config's splits under
    ``<out_root>/<split>/<Task>/core/`` (plus ``meta.jsonl`` per task and the card
    ``synthetic_vpgc.json``), atomically; the task folders, train first. ``lvlm``: the base
    whose image size and patches shape the data and whose attention places the edits.

    Example::

        make_photo_vpgc("runs/vpgc/photos", PhotoVPGCConfig(n_train=500), HFLVLM(blip2_dir))
    """
    config = config or PhotoVPGCConfig()
    geometry = config.geometry(lvlm)

    def generate(name: str, split: str, split_root: Path) -> tuple[DemonTask, list[dict]]:
        return generate_photo_task(name, split, config, split_root, lvlm)

    card = photo_card(config, lvlm, geometry)
    return write_synthetic_tasks(
        out_root, tuple(config.split_sizes()), tuple(PHOTO_TASKS), generate, card, progress
    )


def photo_card(
    config: PhotoVPGCConfig, lvlm: HFLVLM | None, geometry: PhotoGeometry | None = None
) -> dict[str, Any]:
    """The data card: source, config, geometry, photos, base fingerprint, tasks."""
    geometry = geometry or config.geometry(lvlm)
    return {
        "source": SOURCE,
        "config": asdict(config),
        "geometry": {**asdict(geometry), "grid": geometry.grid},
        "photos": list(config.photo_names()),
        "base": None if lvlm is None else lvlm.fingerprint,
        "tasks": {n: {"question_type": q} for n, (q, _) in PHOTO_TASKS.items()},
    }


def photo_training_data(
    lvlm: HFLVLM, data_dir: str | os.PathLike[str], config: PhotoVPGCConfig
) -> list[Path]:
    """The training task folders of photo data for ``lvlm`` in ``data_dir``: reused when its
    card is the one this config and base would write, else written (``make_photo_vpgc``)."""
    data_dir = Path(data_dir)
    if not card_matches(data_dir / CARD_NAME, photo_card(config, lvlm)):
        make_photo_vpgc(data_dir, config, lvlm)
    return sorted(p for p in (data_dir / "train").iterdir() if p.is_dir())

"""Which synthetic data VPG-C trains on, made (or reused) and handed to ``train_vpgc``.

``VPGCDataConfig.source`` picks the generator:

* ``"world"``: the built-in world's 32 px scenes with one edited region (``data``);
* ``"photos"``: edited scikit-image photos at the base's image size (``photos``);
* ``"episodes"``: in-context episodes with an edited twin, for the world LVLM (``episodes``);
* ``"auto"``: world for a base whose tower reads images of at most 32 px (the built-in LVLM),
  photos for any other (``default_source``).

``training_samples(base, data_dir, config, seed)`` writes the data into ``data_dir`` unless
its card already holds the same data config and base, and returns the ``(prompt, response)``
pairs as ``TrainingSamples`` with a digest of what they read. ``train_on_synthetic`` is the
whole run: load and freeze the base, make the samples, ``train_vpgc``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from drum.adapters.vpgc.train import TrainingSamples, VPGCTrainConfig, train_vpgc
from drum.builtin.vpgc.data import CARD_NAME as DATA_CARD
from drum.builtin.vpgc.data import REGIONS, SyntheticVPGCConfig, make_synthetic_vpgc
from drum.builtin.vpgc.episodes import CARD_NAME as EPISODES_CARD
from drum.builtin.vpgc.episodes import (
    TwinEpisodeConfig,
    episodes_digest,
    load_twin_samples,
    make_twin_episodes,
)
from drum.builtin.vpgc.photos import SOURCE as PHOTOS
from drum.builtin.vpgc.photos import PhotoVPGCConfig, photo_training_data
from drum.demon.format import read_demon_task
from drum.demon.prompt import demon_prompt
from drum.lvlm.hf import HFLVLM
from drum.utils.checkpoint import card_matches
from drum.utils.seed import seed_everything

SOURCES = ("auto", "world", "photos", "episodes")
WORLD_IMAGE_SIZE = 32  # the built-in world's scenes: bases reading larger images get photos


@dataclass(frozen=True)
class VPGCDataConfig:
    """The synthetic data of one run (its seed is the run's, ``VPGCTrainConfig.seed``).

    Attributes:
        source: ``SOURCES`` (module docstring).
        n_train: synthetic samples per task (four tasks); ``source="episodes"``: episodes.
        region: ``"attention"`` (edits where the base attends least) or ``"random"`` (the
            ablation).
    """

    source: str = "auto"
    n_train: int = 500
    region: str = "attention"

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {self.source!r}")
        if self.region not in REGIONS:
            raise ValueError(f"region must be one of {REGIONS}, got {self.region!r}")
        if self.n_train < 1:
            raise ValueError(f"n_train must be >= 1, got {self.n_train}")


def default_source(lvlm: HFLVLM) -> str:
    """``"world"`` for a base whose tower reads the built-in world's 32 px images (the built-in
    LVLM), ``"photos"`` for any other (BLIP-2, LLaVA, Qwen2-VL at real sizes)."""
    vision = lvlm.model.config.vision_config
    size = getattr(vision, "image_size", None)
    return "world" if size is not None and int(size) <= WORLD_IMAGE_SIZE else PHOTOS


def training_samples(
    base: HFLVLM, data_dir: str | Path, config: VPGCDataConfig, seed: int
) -> TrainingSamples:
    """The ``(prompt, response)`` pairs of ``config.source`` (``"auto"`` resolved) over
    ``base``, with a digest of what they read: the data in ``data_dir``, reused when its card
    holds the same data config and base, else written."""
    data_dir = Path(data_dir)
    source = default_source(base) if config.source == "auto" else config.source
    if source == "episodes":
        episodes = TwinEpisodeConfig(n_train=config.n_train, seed=seed, region=config.region)
        expected = {"config": asdict(episodes), "base": base.fingerprint}
        if not card_matches(data_dir / EPISODES_CARD, expected):
            make_twin_episodes(data_dir, episodes, base)
        pairs = load_twin_samples(data_dir)
        return TrainingSamples(pairs, episodes_digest(data_dir), source, data_dir)
    if source == "photos":
        photos = PhotoVPGCConfig(n_train=config.n_train, seed=seed, region=config.region)
        folders = photo_training_data(base, data_dir, photos)
    else:
        world = SyntheticVPGCConfig(n_train=config.n_train, seed=seed, region=config.region)
        expected = {"config": asdict(world), "base": base.fingerprint}
        if not card_matches(data_dir / DATA_CARD, expected):
            make_synthetic_vpgc(data_dir, world, base)
        folders = sorted(p for p in (data_dir / "train").iterdir() if p.is_dir())
    from drum.builtin.demon.lvlm import tasks_digest  # the DEMON base's trainer, lazily

    tasks = [read_demon_task(folder) for folder in folders]
    pairs = [(demon_prompt(t, s), str(s.response)) for t in tasks for s in t.samples]
    return TrainingSamples(pairs, tasks_digest(tasks), source, data_dir)


def train_on_synthetic(
    base_dir: str | Path,
    out_dir: str | Path,
    train: VPGCTrainConfig | None = None,
    data: VPGCDataConfig | None = None,
    *,
    data_dir: str | Path | None = None,
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> Path:
    """Train ``train.method`` over the base in ``base_dir`` on the synthetic data ``data``
    (written into ``data_dir``, default ``<out_dir>.data`` beside ``out_dir``) and write
    ``out_dir`` (``train_vpgc``); a finished ``out_dir`` of the same run is returned as is, an
    interrupted one resumes.

    Example::

        train_on_synthetic("drum/assets/demon_base/model", "runs/vpgc/adapter")
        model = load_adapter(HFLVLM("drum/assets/demon_base/model"), "runs/vpgc/adapter")
    """
    train = train or VPGCTrainConfig()
    data = data or VPGCDataConfig()
    out_dir = Path(out_dir)
    data_dir = Path(data_dir) if data_dir is not None else out_dir.parent / f"{out_dir.name}.data"
    seed_everything(train.seed)
    base = HFLVLM(base_dir)
    for parameter in base.model.parameters():
        parameter.requires_grad_(False)
    samples = training_samples(base, data_dir, data, train.seed)
    return train_vpgc(base, out_dir, samples, train, progress=progress, on_step=on_step)

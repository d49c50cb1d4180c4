"""The built-in embedder and LVLM: trained here, or taken from the frozen copies shipped in
``drum/assets/builtin`` when they were trained on the very world in use.

Training the built-in LVLM until it learns in context takes longer than ``make demo`` may
spend, so a frozen copy ships with the package: produced by ``drum lvlm train-builtin`` (seed
and config recorded in its card) and ``drum lvlm freeze``, and checked by SHA-256 before use.
Retraining stays one command; a world with another config always trains its own models.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from drum.builtin.embedder import BuiltinEmbedderConfig, train_builtin_embedder
from drum.builtin.lvlm.train import BuiltinLVLMConfig, train_builtin_lvlm
from drum.builtin.world.generate import WorldConfig, load_world_card
from drum.utils.fingerprint import sha256_file
from drum.utils.io import atomic_directory, atomic_write_json

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets" / "builtin"
MANIFEST = "MANIFEST.json"
MODELS = ("embedder", "lvlm")


class AssetError(RuntimeError):
    """A shipped model whose files do not match the manifest."""


def _lvlm_flags(lvlm_dir: Path) -> str:
    """The ``drum lvlm train-builtin`` flags that reproduce the LVLM at ``lvlm_dir``."""
    from drum.builtin.lvlm.train import CARD_NAME

    config = json.loads((lvlm_dir / CARD_NAME).read_text(encoding="utf-8"))["identity"]["config"]
    return (
        f"--max-steps {config['max_steps']} --max-seconds {config['max_seconds']:g} "
        f"--seed {config['seed']}"
    )


def freeze_builtin_models(
    world_dir: Path, embedder_dir: Path, lvlm_dir: Path, out_dir: Path = ASSETS_DIR
) -> Path:
    """Copy trained models into ``out_dir`` with a manifest of their files' SHA-256."""
    world = load_world_card(world_dir)
    files: dict[str, dict[str, str]] = {}
    with atomic_directory(out_dir) as staging:
        for name, source in zip(MODELS, (embedder_dir, lvlm_dir), strict=True):
            shutil.copytree(source, staging / name)
            files[name] = {p.name: sha256_file(p) for p in sorted((staging / name).iterdir())}
        atomic_write_json(
            staging / MANIFEST,
            {
                "world_config": world["config"],
                "files": files,
                "reproduce": [
                    "drum data make-world --out world",
                    "drum embed train-builtin --world world --out models/embedder",
                    "drum lvlm train-builtin --world world --embedder models/embedder "
                    f"--out models/lvlm {_lvlm_flags(Path(lvlm_dir))}",
                    "drum lvlm freeze --world world --embedder models/embedder --lvlm models/lvlm",
                ],
            },
        )
    return out_dir


def verified_assets(
    world_config: WorldConfig, assets_dir: Path = ASSETS_DIR
) -> dict[str, Path] | None:
    """The shipped model directories if they were trained on ``world_config``, else None.

    Raises ``AssetError`` when a shipped file is missing or its hash does not match.
    """
    manifest_path = assets_dir / MANIFEST
    if not manifest_path.is_file():
        return None
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if manifest["world_config"] != asdict(world_config):
        return None
    for name, files in manifest["files"].items():
        for file_name, expected in files.items():
            path = assets_dir / name / file_name
            if not path.is_file():
                raise AssetError(f"{path}: missing (listed in {manifest_path})")
            if sha256_file(path) != expected:
                raise AssetError(f"{path}: SHA-256 differs from {manifest_path}; reinstall drum")
    return {name: assets_dir / name for name in MODELS}


def ensure_builtin_models(
    world_dir: Path,
    models_dir: Path,
    world_config: WorldConfig,
    embedder_config: BuiltinEmbedderConfig | None = None,
    lvlm_config: BuiltinLVLMConfig | None = None,
    use_assets: bool = True,
) -> dict[str, Any]:
    """Paths of the built-in embedder and LVLM for this world, and where they came from."""
    if use_assets:
        assets = verified_assets(world_config)
        if assets is not None:
            return {**assets, "source": f"shipped ({ASSETS_DIR})"}
    embedder_dir = train_builtin_embedder(world_dir, models_dir / "embedder", embedder_config)
    lvlm_dir = train_builtin_lvlm(world_dir, embedder_dir, models_dir / "lvlm", lvlm_config)
    return {"embedder": embedder_dir, "lvlm": lvlm_dir, "source": f"trained ({models_dir})"}

"""The built-in DEMON base LVLM shipped with the package (``drum/assets/demon_base``).

Training the base takes longer than ``make demon`` should spend, so a frozen copy ships,
made by ``drum demon train-base`` then ``drum demon freeze-base``. Its manifest records what
made it (the training recipe, the generic data's config, the built-in embedder's digest) and
every file's SHA-256; it is used only when all of these match the run at hand, and it is
checked file by file before use.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from drum.builtin.demon.config import BuiltinDemonConfig
from drum.builtin.demon.lvlm import DemonLVLMConfig
from drum.utils.fingerprint import directory_digest, sha256_file
from drum.utils.io import atomic_directory, atomic_write_json

DEMON_BASE_DIR = Path(__file__).resolve().parent.parent.parent / "assets" / "demon_base"
MANIFEST = "MANIFEST.json"
MODEL = "model"


class DemonAssetError(RuntimeError):
    """A shipped DEMON base whose files do not match its manifest."""


def base_identity(
    config: DemonLVLMConfig, generic: BuiltinDemonConfig, embedder_dir: Path
) -> dict[str, Any]:
    """What determines the base: recipe, generic data (deterministic from its config), CLIP."""
    return {
        "config": json.loads(json.dumps(asdict(config))),
        "generic_data": asdict(generic),
        "embedder_digest": directory_digest(embedder_dir),
    }


def reproduce_lines(config: DemonLVLMConfig, generic: BuiltinDemonConfig) -> list[str]:
    return [
        "drum demon train-base --out models/demon_base "
        f"--max-steps {config.max_steps} --seed {config.seed} "
        f"--n-train {generic.n_train} --n-test {generic.n_test}",
        "drum demon freeze-base --base models/demon_base",
    ]


def freeze_demon_base(
    base_dir: Path,
    identity: dict[str, Any],
    reproduce: list[str],
    out_dir: Path = DEMON_BASE_DIR,
) -> Path:
    """Copy a trained base into ``out_dir`` with its identity and files' SHA-256."""
    with atomic_directory(out_dir) as staging:
        shutil.copytree(base_dir, staging / MODEL)
        files = {p.name: sha256_file(p) for p in sorted((staging / MODEL).iterdir())}
        atomic_write_json(
            staging / MANIFEST, {"identity": identity, "files": files, "reproduce": reproduce}
        )
    return out_dir


def shipped_demon_base(identity: dict[str, Any], assets_dir: Path = DEMON_BASE_DIR) -> Path | None:
    """The shipped base's directory if it was made as ``identity`` says, else None.

    Raises ``DemonAssetError`` when a shipped file is missing or its hash does not match.
    """
    manifest_path = assets_dir / MANIFEST
    if not manifest_path.is_file():
        return None
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if manifest.get("identity") != identity:
        return None
    model_dir = assets_dir / MODEL
    for name, digest in manifest["files"].items():
        path = model_dir / name
        if not path.is_file() or sha256_file(path) != digest:
            raise DemonAssetError(
                f"shipped DEMON base file {path} is missing or does not match {manifest_path}; "
                "reinstall the package or retrain: " + " && ".join(manifest["reproduce"])
            )
    return model_dir

"""The built-in BLIP-2 shipped with the package (``drum/assets/builtin_blip2``).

Its three-stage training takes tens of minutes, so a frozen copy ships: ``stage_b`` (the base,
with the bottleneck) and ``stage_a`` (the ceiling: the same model before its queries were
retrained), made by ``drum vpgc train-blip2`` then ``drum vpgc freeze-blip2``. The manifest
records the recipe, the gates it passed and every file's SHA-256; the copy is used only for
the same recipe, checked file by file first. Freezing refuses a run whose gates failed.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from drum.builtin.blip2.train import BuiltinBlip2Config, load_card, train_builtin_blip2
from drum.utils.fingerprint import sha256_file
from drum.utils.io import atomic_directory, atomic_write_json

BLIP2_ASSETS_DIR = Path(__file__).resolve().parent.parent.parent / "assets" / "builtin_blip2"
MANIFEST = "MANIFEST.json"
SHIPPED = ("stage_a", "stage_b")


class Blip2AssetError(RuntimeError):
    """A shipped file that is missing or does not match the manifest, or a run whose gates
    failed offered for freezing."""


def _config_json(config: BuiltinBlip2Config) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(config)))


def reproduce_lines(config: BuiltinBlip2Config) -> list[str]:
    return [
        f"drum vpgc train-blip2 --out models/builtin_blip2 --seed {config.seed}",
        "drum vpgc freeze-blip2 --trained models/builtin_blip2",
    ]


def freeze_builtin_blip2(trained_dir: str | Path, out_dir: Path = BLIP2_ASSETS_DIR) -> Path:
    """Copy a trained run's ``stage_a`` and ``stage_b`` into ``out_dir`` with a manifest."""
    trained_dir = Path(trained_dir)
    card = load_card(trained_dir)
    if not card["passed"]:
        failed = [gate["name"] for gate in card["gates"] if not gate["passed"]]
        raise Blip2AssetError(f"{trained_dir}: gates failed, not freezing: {failed}")
    config = BuiltinBlip2Config(**card["config"])
    with atomic_directory(out_dir) as staging:
        files: dict[str, dict[str, str]] = {}
        for name in SHIPPED:
            shutil.copytree(trained_dir / name, staging / name)
            files[name] = {p.name: sha256_file(p) for p in sorted((staging / name).iterdir())}
        atomic_write_json(
            staging / MANIFEST,
            {
                "config": card["config"],
                "gates": card["gates"],
                "diagnostics": card["diagnostics"],
                "files": files,
                "reproduce": reproduce_lines(config),
            },
        )
    return out_dir


def shipped_builtin_blip2(
    config: BuiltinBlip2Config, assets_dir: Path = BLIP2_ASSETS_DIR
) -> dict[str, Path] | None:
    """``{"stage_a": dir, "stage_b": dir}`` of the shipped copy if it was trained with
    ``config``, else None; ``Blip2AssetError`` when a file is missing or altered."""
    manifest_path = assets_dir / MANIFEST
    if not manifest_path.is_file():
        return None
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if manifest.get("config") != _config_json(config):
        return None
    for name, digests in manifest["files"].items():
        for file_name, digest in digests.items():
            path = assets_dir / name / file_name
            if not path.is_file() or sha256_file(path) != digest:
                raise Blip2AssetError(
                    f"shipped built-in BLIP-2 file {path} is missing or does not match "
                    f"{manifest_path}; reinstall the package or retrain: "
                    + " && ".join(manifest["reproduce"])
                )
    return {name: assets_dir / name for name in SHIPPED}


def ensure_builtin_blip2(
    work_dir: str | Path,
    config: BuiltinBlip2Config | None = None,
    progress: bool = True,
    require_gates: bool = True,
) -> dict[str, Path]:
    """The shipped copy when it matches ``config``, else one trained into ``work_dir`` (its
    gates must pass unless ``require_gates`` is off: tiny recipes in tests cannot)."""
    config = config or BuiltinBlip2Config()
    shipped = shipped_builtin_blip2(config)
    if shipped is not None:
        return shipped
    card = train_builtin_blip2(work_dir, config, progress)
    if require_gates and not card["passed"]:
        failed = [gate["name"] for gate in card["gates"] if not gate["passed"]]
        raise Blip2AssetError(f"the built-in BLIP-2 trained in {work_dir} failed {failed}")
    return {name: Path(work_dir) / name for name in SHIPPED}

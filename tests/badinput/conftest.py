"""Broken inputs, built once per session from the tiny world: one JSONL file per case, a task
file per case, and a world per case whose ``vqa/pool.jsonl`` is the broken file.

``CASES``: name -> (line the error is on or ``None``, a phrase the message must contain).
Image paths in every file are absolute, so a file means the same wherever a test puts it.
"""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from drum.builtin.world.tasks import QUERY_SPLITS, WORLD_TASKS
from tests.data.big_png import write_big_png

CASES: dict[str, tuple[int | None, str]] = {
    "missing_file": (None, "not found"),
    "empty_file": (None, "no examples"),
    "malformed_json": (3, "malformed JSON at column 2"),
    "missing_field": (2, "missing field(s) ['answers']"),
    "wrong_type": (2, "field 'text' must be a string"),
    "no_images": (2, "field 'images' must name at least one image"),
    "missing_image": (2, "image not found"),
    "corrupt_png": (2, "corrupt image"),  # broken deflate stream under a valid CRC
    "truncated_png": (2, "corrupt image"),
    # 20000 x 20000 (a few KB on disk): over MAX_IMAGE_PIXELS and PIL's own bomb limit.
    "huge_png": (2, "image too large"),
    "empty_answers": (2, "field 'answers' must hold non-empty answers"),
    "duplicate_id": (5, "duplicate id"),
}
N_GOOD = 8


@dataclass(frozen=True)
class BadInputs:
    root: Path
    good: Path  # N_GOOD valid vqa examples
    bom: Path  # the same with a UTF-8 BOM: must pass everywhere
    files: dict[str, Path]  # case -> broken JSONL (missing_file: a path that does not exist)
    worlds: dict[str, Path]  # case -> world directory whose vqa/pool.jsonl is the broken file
    bom_world: Path  # a valid world whose vqa/pool.jsonl starts with a UTF-8 BOM


def _absolute(path: Path) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for record in records:
        record["images"] = [str((path.parent / name).resolve()) for name in record["images"]]
    return records


def _write(path: Path, records: list[Any], prefix: bytes = b"") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_bytes(prefix + "".join(line + "\n" for line in lines).encode())
    return path


def broken_deflate_png(good: bytes) -> bytes:
    """``good`` with its IDAT's compressed bytes flipped and the CRC recomputed: PIL's
    ``verify()`` (CRCs only) passes it, decoding fails."""
    out, position = bytearray(good[:8]), 8
    while position < len(good):
        (length,) = struct.unpack(">I", good[position : position + 4])
        kind = good[position + 4 : position + 8]
        data = good[position + 8 : position + 8 + length]
        if kind == b"IDAT":
            data = data[:2] + bytes(byte ^ 0xFF for byte in data[2:40]) + data[40:]
        out += struct.pack(">I", len(data)) + kind + data
        out += struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        position += 12 + length
    return bytes(out)


def _broken(case: str, good: list[dict[str, Any]], images: Path) -> list[Any] | None:
    records = [dict(r) for r in good]
    second = records[1]
    if case == "missing_file":
        return None
    if case == "empty_file":
        return []
    if case == "malformed_json":
        records[2] = "{oops"
    elif case == "missing_field":
        del second["answers"]
    elif case == "wrong_type":
        second["text"] = 5
    elif case == "no_images":
        second["images"] = []
    elif case == "missing_image":
        second["images"] = [str(images / "nowhere.png")]
    elif case in ("corrupt_png", "truncated_png", "huge_png"):
        second["images"] = [str(images / f"{case}.png")]
    elif case == "empty_answers":
        second["answers"] = ""
    elif case == "duplicate_id":
        records[4]["id"] = records[0]["id"]
    return records


@pytest.fixture(scope="session")
def bad_inputs(tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> BadInputs:
    root = tmp_path_factory.mktemp("badinput")
    good = _absolute(tiny_world / "vqa" / "pool.jsonl")[:N_GOOD]
    images = root / "images"
    images.mkdir()
    png = Path(good[1]["images"][0]).read_bytes()
    (images / "corrupt_png.png").write_bytes(broken_deflate_png(png))
    (images / "truncated_png.png").write_bytes(png[: len(png) // 2])
    write_big_png(images / "huge_png.png", 20000, 20000)
    files = {}
    for case in CASES:
        records = _broken(case, good, images)
        path = root / f"{case}.jsonl"
        files[case] = path if records is None else _write(path, records)
    # A world per case: the tiny world's files (absolute image paths), vqa/pool.jsonl broken.
    template = root / "world-template"
    shutil.copy(tiny_world / "world.json", _write(template / "train.jsonl", []).parent)
    _write(template / "train.jsonl", _absolute(tiny_world / "train.jsonl"))
    for task in WORLD_TASKS:
        for split in ("pool", *QUERY_SPLITS):
            name = f"{task}/{split}.jsonl"
            _write(template / name, _absolute(tiny_world / name))
    worlds = {}
    for case, path in files.items():
        world = root / "worlds" / case / "world"
        shutil.copytree(template, world)
        (world / "vqa" / "pool.jsonl").unlink()
        if path.exists():
            shutil.copy(path, world / "vqa" / "pool.jsonl")
        worlds[case] = world
    bom_world = root / "worlds" / "bom" / "world"
    shutil.copytree(template, bom_world)
    pool = bom_world / "vqa" / "pool.jsonl"
    pool.write_bytes(b"\xef\xbb\xbf" + pool.read_bytes())
    return BadInputs(
        root=root,
        good=_write(root / "good.jsonl", good),
        bom=_write(root / "bom.jsonl", good, prefix=b"\xef\xbb\xbf"),
        files=files,
        worlds=worlds,
        bom_world=bom_world,
    )

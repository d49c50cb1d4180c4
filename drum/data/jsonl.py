"""JSONL datasets: one example per line, images by path relative to the JSONL file.

Line format (``meta`` optional; ``answers`` may be a single string)::

    {"id": "q1", "images": ["images/00001.png"], "text": "what colour is the circle?",
     "answers": ["dax", "dax", ...], "task": "vqa", "meta": {...}}

Every problem in a file is reported as a ``DataError`` that names the file and the line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from drum.data.example import TASK_TYPES, Example
from drum.utils.io import atomic_open

REQUIRED_FIELDS = ("id", "images", "text", "answers", "task")


class DataError(ValueError):
    """Bad input data; the message names the file and line and what was expected."""

    def __init__(self, path: str | os.PathLike[str], line: int | None, message: str) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")
        self.path = Path(path)
        self.line = line


def _as_str_list(value: Any, name: str, path: Path, line: int) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise DataError(path, line, f"field {name!r} must be a string or a list of strings")


def _parse_line(raw: str, path: Path, line: int, verify_images: bool) -> Example:
    try:
        record = json.loads(raw)
    except json.JSONDecodeError as error:
        raise DataError(
            path, line, f"malformed JSON ({error.msg} at column {error.colno})"
        ) from None
    if not isinstance(record, dict):
        raise DataError(path, line, f"expected a JSON object, got {type(record).__name__}")
    missing = [name for name in REQUIRED_FIELDS if name not in record]
    if missing:
        raise DataError(
            path, line, f"missing field(s) {missing}; required: {list(REQUIRED_FIELDS)}"
        )
    if not isinstance(record["id"], str) or not record["id"]:
        raise DataError(path, line, "field 'id' must be a non-empty string")
    if not isinstance(record["text"], str):
        raise DataError(path, line, "field 'text' must be a string")
    if record["task"] not in TASK_TYPES:
        raise DataError(
            path, line, f"field 'task' must be one of {TASK_TYPES}, got {record['task']!r}"
        )
    answers = _as_str_list(record["answers"], "answers", path, line)
    if not answers:
        raise DataError(path, line, "field 'answers' must hold at least one answer")
    image_paths = tuple(
        (path.parent / name).resolve()
        for name in _as_str_list(record["images"], "images", path, line)
    )
    meta = record.get("meta", {})
    if not isinstance(meta, dict):
        raise DataError(path, line, "field 'meta' must be a JSON object")
    if verify_images:
        for image_path in image_paths:
            verify_image(image_path, path, line)
    return Example(
        id=record["id"],
        images=image_paths,
        text=record["text"],
        answers=tuple(answers),
        task=record["task"],
        meta=meta,
    )


def verify_image(image_path: Path, source: Path, line: int | None) -> None:
    """Raise a ``DataError`` unless ``image_path`` is a readable, uncorrupted image."""
    if not image_path.is_file():
        raise DataError(source, line, f"image not found: {image_path}")
    try:
        with Image.open(image_path) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise DataError(
            source, line, f"unreadable or corrupt image {image_path}: {error}"
        ) from None


def read_examples(path: str | os.PathLike[str], verify_images: bool = True) -> list[Example]:
    """Read a JSONL dataset; blank lines are skipped, duplicate ids are an error.

    Every problem is a ``DataError`` naming the file and line; ``verify_images`` also opens
    every image.

    Example::

        pool = read_examples("world/vqa/pool.jsonl")
        pool[0].text, pool[0].answers, pool[0].images
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, "dataset file not found")
    examples: list[Example] = []
    first_line_of: dict[str, int] = {}
    # Bytes, decoded line by line, so that invalid UTF-8 is a DataError naming its line rather
    # than a bare UnicodeDecodeError from somewhere in a read-ahead chunk.
    with path.open("rb") as handle:
        for line_number, raw_bytes in enumerate(handle, start=1):
            try:
                raw = raw_bytes.decode("utf-8")
            except UnicodeDecodeError as error:
                raise DataError(
                    path, line_number, f"not valid UTF-8 ({error.reason} at byte {error.start})"
                ) from None
            if not raw.strip():
                continue
            example = _parse_line(raw, path, line_number, verify_images)
            if example.id in first_line_of:
                raise DataError(
                    path,
                    line_number,
                    f"duplicate id {example.id!r} (first seen on line {first_line_of[example.id]})",
                )
            first_line_of[example.id] = line_number
            examples.append(example)
    return examples


def example_to_record(example: Example, relative_to: Path) -> dict[str, Any]:
    """The JSON object for ``example``, image paths relative to ``relative_to`` when possible."""
    images = []
    for image_path in example.images:
        try:
            images.append(os.path.relpath(Path(image_path).resolve(), relative_to.resolve()))
        except ValueError:  # another drive on Windows
            images.append(str(image_path))
    return {
        "id": example.id,
        "images": images,
        "text": example.text,
        "answers": list(example.answers),
        "task": example.task,
        "meta": example.meta,
    }


def write_examples(path: str | os.PathLike[str], examples: Iterable[Example]) -> int:
    """Write ``examples`` as JSONL atomically; returns how many were written.

    Image paths are stored relative to the file's folder.

    Example::

        write_examples("data/val.jsonl", read_examples("data/all.jsonl")[:100])
    """
    path = Path(path)
    count = 0
    seen: set[str] = set()
    with atomic_open(path, "w") as handle:
        for example in examples:
            if example.id in seen:
                raise DataError(path, None, f"refusing to write duplicate id {example.id!r}")
            seen.add(example.id)
            record = example_to_record(example, path.parent)
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count

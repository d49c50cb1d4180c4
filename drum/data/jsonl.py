"""JSONL datasets: one example per line, images by path relative to the JSONL file.

An image path may point anywhere, relative (``../images/a.png``, as the built-in world's task
folders share one image folder) or absolute: it is read where it points and never written.

Line format (``meta`` optional; ``answers`` may be a single string)::

    {"id": "q1", "images": ["images/00001.png"], "text": "what colour is the circle?",
     "answers": ["dax", "dax", ...], "task": "vqa", "meta": {...}}

``"answers": []`` is a query without references (a test split whose answers are not public):
it can be embedded and retrieved for, but a pool (demonstrations) must not hold one and an
evaluation cannot score one; ``read_examples(..., require_answers=True)`` refuses them with the
line, ``require_references`` counts them in a query split.

Every problem in a file is reported as a ``DataError`` that names the file and the line; a
UTF-8 byte-order mark at the start of the file is accepted, and fields other than those above
are ignored with one ``DataWarning`` per file. ``validate_dataset`` is the check every command
runs on its data before any slow work: every field, every image decoded in full (within
``drum.data.images.MAX_IMAGE_PIXELS``; one over it is "too large", not corrupt), at least one
example.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from drum.data.example import TASK_TYPES, Example
from drum.data.images import ImageTooLarge, decode_image
from drum.utils.io import atomic_open

REQUIRED_FIELDS = ("id", "images", "text", "answers", "task")
KNOWN_FIELDS = (*REQUIRED_FIELDS, "meta")
_BOM = "\ufeff"


class DataError(ValueError):
    """Bad input data; the message names the file and line and what was expected."""

    def __init__(self, path: str | os.PathLike[str], line: int | None, message: str) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")
        self.path = Path(path)
        self.line = line


class DataWarning(UserWarning):
    """Suspicious but usable input data (fields that are ignored); names the file and line."""


def _as_str_list(value: Any, name: str, path: Path, line: int) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise DataError(path, line, f"field {name!r} must be a string or a list of strings")


def _parse_line(
    raw: str, path: Path, line: int, verify_images: bool, verified: set[Path]
) -> tuple[Example, list[str]]:
    """The example on one line and the names of the unknown fields it carries."""
    try:
        record = json.loads(raw)
    except json.JSONDecodeError as error:
        # colno counts characters from 1, as editors do, in the line as decoded (BOM removed).
        raise DataError(
            path, line, f"malformed JSON at column {error.colno}: {error.msg}"
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
    # [] is a query without references; a blank string is never an answer.
    if not all(answer.strip() for answer in answers):
        raise DataError(
            path, line, f"field 'answers' must hold non-empty answers, got {record['answers']!r}"
        )
    names = _as_str_list(record["images"], "images", path, line)
    if not names or not all(names):
        raise DataError(
            path, line, f"field 'images' must name at least one image, got {record['images']!r}"
        )
    image_paths = tuple((path.parent / name).resolve() for name in names)
    meta = record.get("meta", {})
    if not isinstance(meta, dict):
        raise DataError(path, line, "field 'meta' must be a JSON object")
    if verify_images:
        for image_path in image_paths:
            if image_path not in verified:
                verify_image(image_path, path, line)
                verified.add(image_path)
    example = Example(
        id=record["id"],
        images=image_paths,
        text=record["text"],
        answers=tuple(answers),
        task=record["task"],
        meta=meta,
    )
    return example, [name for name in record if name not in KNOWN_FIELDS]


def verify_image(image_path: Path, source: Path, line: int | None) -> None:
    """Raise a ``DataError`` unless ``image_path`` is an image that decodes in full within
    ``MAX_IMAGE_PIXELS`` (``drum.data.images.decode_image``): one over the limit is reported
    as too large, not as corrupt."""
    if not image_path.is_file():
        raise DataError(source, line, f"image not found: {image_path}")
    try:
        decode_image(image_path)
    except ImageTooLarge as error:
        raise DataError(source, line, str(error)) from None
    except (OSError, SyntaxError, ValueError) as error:
        # UnidentifiedImageError and "image file is truncated" are OSErrors.
        raise DataError(
            source, line, f"unreadable or corrupt image {image_path}: {error}"
        ) from None


def text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of each non-blank line of ``path``, a UTF-8 BOM dropped.

    Read as bytes and decoded line by line, so that invalid UTF-8 is a ``DataError`` naming its
    line rather than a bare ``UnicodeDecodeError`` from somewhere in a read-ahead chunk.
    """
    with path.open("rb") as handle:
        for line_number, raw_bytes in enumerate(handle, start=1):
            try:
                raw = raw_bytes.decode("utf-8")
            except UnicodeDecodeError as error:
                raise DataError(
                    path, line_number, f"not valid UTF-8 ({error.reason} at byte {error.start})"
                ) from None
            if line_number == 1:
                raw = raw.removeprefix(_BOM)  # editors on Windows write one
            if raw.strip():
                yield line_number, raw


def read_examples(
    path: str | os.PathLike[str], verify_images: bool = True, require_answers: bool = False
) -> list[Example]:
    """Read a JSONL dataset; blank lines are skipped, duplicate ids are an error.

    Every problem is a ``DataError`` naming the file and line; ``verify_images`` also decodes
    every image in full (about 0.1 ms for a 32 px PNG). Unknown fields are ignored with one
    ``DataWarning`` for the file, naming them and the line where the first appears.
    ``require_answers``: the file is a pool, whose examples serve as demonstrations, so an
    example without answers (``"answers": []``) is a ``DataError`` naming its line.

    Example::

        pool = read_examples("world/vqa/pool.jsonl")
        pool[0].text, pool[0].answers, pool[0].images
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, "dataset file not found")
    examples: list[Example] = []
    first_line_of: dict[str, int] = {}
    unknown: dict[str, int] = {}  # unknown field -> the line it first appears on
    verified: set[Path] = set()
    for line_number, raw in text_lines(path):
        example, extra = _parse_line(raw, path, line_number, verify_images, verified)
        if require_answers and not example.has_answers:
            raise DataError(path, line_number, unanswered_demonstration(example))
        if example.id in first_line_of:
            raise DataError(
                path,
                line_number,
                f"duplicate id {example.id!r} (first seen on line {first_line_of[example.id]})",
            )
        first_line_of[example.id] = line_number
        for name in extra:
            unknown.setdefault(name, line_number)
        examples.append(example)
    if unknown:
        first = min(unknown.values())
        warnings.warn(
            f"{path}:{first}: unknown field(s) {sorted(unknown)} ignored (from line {first} on); "
            f"known fields: {list(KNOWN_FIELDS)}",
            DataWarning,
            stacklevel=2,
        )
    return examples


def unanswered_demonstration(example: Example) -> str:
    """Why ``example`` (without answers) cannot be in a pool; the text of the error."""
    return (
        f'example {example.id!r} has no answers ("answers": []): a pool\'s examples serve '
        "as demonstrations and each needs one; an answerless split can only be queries"
    )


def count_unanswered(examples: Iterable[Example]) -> int:
    """How many of ``examples`` have no answers (queries without references)."""
    return sum(not example.has_answers for example in examples)


def require_references(path: str | os.PathLike[str], queries: Sequence[Example]) -> None:
    """A ``DataError`` naming ``path`` unless every query has answers: scoring needs them.

    Example::

        require_references("data/test.jsonl", queries)
        # DataError("data/test.jsonl: 3 of 5 queries have no answers; scoring needs references")
    """
    missing = count_unanswered(queries)
    if missing:
        first = next(query for query in queries if not query.has_answers)
        raise DataError(
            path,
            None,
            f"{missing} of {len(queries)} queries have no answers; scoring needs references "
            f"(the first: {first.id!r}; a test split without public answers cannot be scored)",
        )


def validate_dataset(path: str | os.PathLike[str], require_answers: bool = False) -> list[Example]:
    """The examples of a JSONL dataset that every command can use, or a ``DataError``.

    ``read_examples`` with every image decoded, and at least one example: what each CLI command
    runs on its data before loading a model or embedding anything. ``require_answers``: the file
    is a pool (demonstrations), so every example needs answers (``read_examples``).

    Example::

        pool = validate_dataset("data/pool.jsonl")  # DataError("data/pool.jsonl:7: ...")
    """
    examples = read_examples(path, verify_images=True, require_answers=require_answers)
    if not examples:
        raise DataError(path, None, "no examples (an empty dataset); expected one JSON per line")
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

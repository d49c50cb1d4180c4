"""What every importer shares: reading official JSON files with errors that say where and what,
the log of skipped records, image checks, and writing + validating the output directory.

An import turns a public benchmark's own files into DRUM JSONL (``drum.data.jsonl``): one
``<split>.jsonl`` per output split in ``out``, image paths relative to ``out``, and
``import_report.json`` beside them. Two kinds of problem are told apart:

* **errors** (``DataError``, the command exits 2): the file is not what the format defines: not
  JSON, the wrong top-level type, a record without a required field or with one of the wrong
  type. The message names the file, the line (JSONL) or the record (``questions[3]``) and what
  was expected.
* **skips**: a well-formed record DRUM cannot use: its image file is missing, unreadable or too
  large (``drum.data.images.MAX_IMAGE_PIXELS``), its image path leaves its image folder, an
  annotation names an unknown question, a duplicate id. Each is counted by reason, the first
  few are listed with where they are, and all of it is printed and written to
  ``import_report.json``; nothing is dropped silently.

Questions without answers (test splits, whose answers are not public) are written, where the
importer supports it (VQAv2, OK-VQA), as queries without references (``"answers": []``) and
counted per split as ``unanswered`` in the report: not skips.

What an import reads and writes: it reads an image only inside the image folder the user gives
for it (``source_image``: a path from the annotations that is absolute or climbs out with
``..`` is skipped as ``OUTSIDE_IMAGE_ROOT``, with or without ``--copy-images``; links inside the
folder are followed, since data sets are often linked in), and writes only inside ``out``
(``ImageChecker.place`` refuses a copy name that would leave the copy folder). The JSONL it
writes points at the images by paths relative to ``out``, which may climb out of it
(``../raw/val2014/...``) when the images are not copied: that is a read, never a write.

The output directory is written as a whole (``atomic_directory``): a failed import leaves the
previous one, or nothing. Every written split is then checked as ``drum data check`` checks it
(``validate_dataset``: every field, every image decoded).
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drum.data.example import Example
from drum.data.images import MAX_IMAGE_PIXELS, ImageTooLarge, decode_image
from drum.data.jsonl import (
    DataError,
    text_lines,
    validate_dataset,
    write_examples,
)
from drum.utils.io import atomic_directory, atomic_write_json

REPORT_NAME = "import_report.json"
# The skip reason of an image path from the annotations that leaves its image folder.
OUTSIDE_IMAGE_ROOT = "image path outside its image folder ('..' or absolute); not read"
# The skip reasons of an image that cannot be used.
IMAGE_NOT_FOUND = "image file not found"
IMAGE_CORRUPT = "image file unreadable or corrupt"
IMAGE_TOO_LARGE = f"image too large (over {MAX_IMAGE_PIXELS} pixels, MAX_IMAGE_PIXELS)"
# How many skipped records the report lists one by one, per split and reason.
SKIP_SAMPLES = 5
# What torchvision's ImageFolder accepts (IMG_EXTENSIONS), lowercase.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def _type_name(value: Any) -> str:
    """The JSON name of ``value``'s type (what a user sees in the file)."""
    if value is None:
        return "null"
    return {
        bool: "boolean",
        int: "number",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
    }.get(type(value), type(value).__name__)


def _require_file(path: Path, what: str) -> None:
    if path.is_dir():
        raise DataError(path, None, f"is a directory; expected a file: {what}")
    if not path.is_file():
        raise DataError(path, None, f"file not found; expected {what}")


def require_dir(path: Path, what: str) -> None:
    """A ``DataError`` unless ``path`` is a directory (an image folder, a dataset root)."""
    if not path.is_dir():
        found = "a file" if path.exists() else "not found"
        raise DataError(path, None, f"{found}; expected a directory: {what}")


def read_json(path: Path, expected: type, what: str) -> Any:
    """The JSON value in ``path``, which must be a ``expected`` (``dict`` or ``list``).

    ``what`` describes the expected content for the messages, e.g. ``'an object with a
    "questions" array'``. A UTF-8 byte-order mark is accepted.
    """
    _require_file(path, what)
    try:
        text = path.read_bytes().decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        raise DataError(
            path, None, f"not valid UTF-8 ({error.reason} at byte {error.start})"
        ) from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(
            path,
            error.lineno,
            f"malformed JSON at column {error.colno}: {error.msg}; expected {what}",
        ) from None
    if not isinstance(value, expected):
        raise DataError(
            path, None, f"expected {what} at the top level, got a JSON {_type_name(value)}"
        )
    return value


def read_jsonl(path: Path, what: str) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each non-blank line of the JSONL file ``path``."""
    _require_file(path, f"JSON lines of {what}")
    records = []
    for number, raw in text_lines(path):
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as error:
            raise DataError(
                path,
                number,
                f"malformed JSON at column {error.colno}: {error.msg}; expected {what}",
            ) from None
        if not isinstance(record, dict):
            raise DataError(path, number, f"expected {what}, got a JSON {_type_name(record)}")
        records.append((number, record))
    return records


@dataclass(frozen=True)
class Where:
    """A record's place in its file: a line (JSONL) or a path into the JSON (``images[3]``)."""

    path: Path
    line: int | None = None
    record: str | None = None

    def error(self, message: str) -> DataError:
        """A ``DataError`` at this place."""
        prefix = f"{self.record}: " if self.record else ""
        return DataError(self.path, self.line, prefix + message)

    def __str__(self) -> str:
        place = f"{self.path}:{self.line}" if self.line is not None else str(self.path)
        return f"{place} {self.record}" if self.record else place


def require(
    record: Mapping[str, Any], name: str, kinds: type | tuple[type, ...], where: Where
) -> Any:
    """``record[name]``, which must be present and a ``kinds``; a ``DataError`` otherwise.

    ``bool`` is never accepted as a number (JSON ``true`` is not an id).
    """
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    names = " or ".join(sorted({_type_name(kind()) for kind in kinds}))
    if name not in record:
        raise where.error(f"missing field {name!r} (a {names}); fields present: {sorted(record)}")
    value = record[name]
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        raise where.error(f"field {name!r} must be a {names}, got {value!r}")
    return value


def answer_strings(value: Any, key: str, where: Where, name: str = "answers") -> list[str]:
    """The strings of an official answers array: ``[{key: str, ...}, ...]`` or ``[str, ...]``."""
    if not isinstance(value, list):
        raise where.error(f"field {name!r} must be an array, got {_type_name(value)}")
    out = []
    for index, item in enumerate(value):
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict) and isinstance(item.get(key), str):
            out.append(item[key])
        else:
            raise where.error(
                f"{name}[{index}] must be an object with a string {key!r} (or a string), "
                f"got {item!r}"
            )
    return out


def most_common_first(answers: list[str], preferred: str | None = None) -> list[str]:
    """The same answers, one copy of the canonical answer moved to the front.

    The canonical answer is what an example shows as a demonstration (``Example.answer``):
    ``preferred`` (VQAv2's ``multiple_choice_answer``) if it is one of the answers, else the
    most frequent answer (ties: the first given). The multiset is unchanged, so the VQA
    accuracy, which is symmetric in the references, is too.
    """
    if not answers:
        return answers
    if preferred is None or preferred not in answers:
        counts = Counter(answers)
        preferred = max(answers, key=lambda answer: counts[answer])  # first of the most common
    rest = list(answers)
    rest.remove(preferred)
    return [preferred, *rest]


@dataclass
class SplitLog:
    """What happened to one output split: examples kept (``unanswered`` of them without
    answers), records skipped by reason."""

    examples: list[Example] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    unanswered: int = 0
    samples: dict[str, list[str]] = field(default_factory=dict)
    _ids: set[str] = field(default_factory=set)

    def skip(self, reason: str, where: Where | str, count: int = 1) -> None:
        """Count ``count`` skipped records under ``reason``, listing the first few by place."""
        self.skipped[reason] += count
        listed = self.samples.setdefault(reason, [])
        if len(listed) < SKIP_SAMPLES:
            listed.append(str(where))

    def add(self, example: Example, where: Where) -> None:
        """Keep ``example``, or skip it if its id is already taken in this split."""
        if example.id in self._ids:
            self.skip("duplicate id (the first record with it is kept)", where)
            return
        self._ids.add(example.id)
        self.examples.append(example)
        self.unanswered += not example.has_answers


# Where the report lists records that belong to no output split (an unmapped source split).
UNASSIGNED = "(not imported)"


class ImportLog:
    """The per-split logs of one import, and the skips that belong to no split (``unassigned``:
    records of a source split mapped to no output split)."""

    def __init__(self) -> None:
        self.splits: dict[str, SplitLog] = {}
        self.unassigned = SplitLog()

    def split(self, name: str) -> SplitLog:
        return self.splits.setdefault(name, SplitLog())


def _leaves(name: str) -> bool:
    """Whether the relative path ``name`` is absolute or climbs above its folder (``a/../..``)."""
    normal = os.path.normpath(name)
    return os.path.isabs(name) or normal == ".." or normal.startswith(".." + os.sep)


def source_image(root: Path, name: str) -> Path | None:
    """``root / name``: the image a record names under its image folder ``root``; ``None`` when
    ``name`` leaves ``root`` (absolute, or ``..`` above it), which the caller skips as
    ``OUTSIDE_IMAGE_ROOT``. The check is on the name, so links inside ``root`` are followed."""
    return None if _leaves(name) else root / name


class ImageChecker:
    """Decides whether an image can be used: the file exists and decodes in full.

    Each path is checked once (many VQA questions share an image). With ``copy_to``, usable
    images are copied there, under ``name`` (a path relative to ``copy_to``), and the copy is
    what the example points at.
    """

    def __init__(self, copy_to: Path | None = None) -> None:
        self.copy_to = copy_to
        self._seen: dict[Path, str | None] = {}  # path -> reason it is unusable, or None

    def problem(self, image: Path) -> str | None:
        """``None`` if ``image`` is usable, else the skip reason."""
        image = image.resolve()
        if image not in self._seen:
            if not image.is_file():
                self._seen[image] = IMAGE_NOT_FOUND
            else:
                try:
                    decode_image(image)
                    self._seen[image] = None
                except ImageTooLarge:
                    self._seen[image] = IMAGE_TOO_LARGE
                except (OSError, SyntaxError, ValueError):
                    # UnidentifiedImageError and "image file is truncated" are OSErrors.
                    self._seen[image] = IMAGE_CORRUPT
        return self._seen[image]

    def place(self, image: Path, name: str) -> Path:
        """Where the example's image is: ``image`` itself, or its copy under ``copy_to``."""
        if self.copy_to is None:
            return image.resolve()
        if _leaves(name):
            # Every importer skips such names first (source_image); this keeps a new one honest.
            raise DataError(image, None, f"copy name {name!r} is outside {self.copy_to}")
        target = self.copy_to / os.path.normpath(name)
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(image, target)  # inside the staging directory: atomic as a whole
        return target


@dataclass(frozen=True)
class ImportReport:
    """The outcome of an import, as written to ``import_report.json``."""

    format: str
    out: Path
    written: dict[str, int]
    skipped: dict[str, dict[str, int]]
    samples: dict[str, dict[str, list[str]]]
    options: dict[str, Any]
    # Per split, how many of the written examples have no answers (queries without references).
    unanswered: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "out": str(self.out),
            "written": self.written,
            "unanswered": self.unanswered,
            "skipped": self.skipped,
            "skipped_samples": self.samples,
            "options": self.options,
        }

    def summary(self) -> str:
        """A few lines for the terminal: per split, what was written and what skipped why."""
        lines = []
        for split, count in self.written.items():
            lines.append(f"{split}: {count} examples -> {self.out / f'{split}.jsonl'}")
            if self.unanswered.get(split):
                lines.append(
                    f'  unanswered {self.unanswered[split]}: no answers ("answers": []): '
                    "queries without references, to retrieve for, not to score nor to use as "
                    "a pool"
                )
            for reason, skipped in sorted(self.skipped.get(split, {}).items()):
                lines.append(f"  skipped {skipped}: {reason}")
        for reason, skipped in sorted(self.skipped.get(UNASSIGNED, {}).items()):
            lines.append(f"{UNASSIGNED}: skipped {skipped}: {reason}")
        lines.append(f"report: {self.out / REPORT_NAME}")
        return "\n".join(lines)


def _options_dict(options: Any) -> dict[str, Any]:
    """The options as JSON (paths as strings), for the report."""
    from dataclasses import asdict

    def plain(value: Any) -> Any:
        if isinstance(value, os.PathLike):
            return str(value)
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    return plain(asdict(options))


def check_out_dir(out: Path, sources: Iterable[Path]) -> None:
    """Refuse an output directory the import would wrongly replace.

    The import replaces ``out`` as a whole, so ``out`` must be new, empty, or an earlier import
    (it holds ``import_report.json``), and hold none of the source files or image folders.
    """
    out = out.resolve()
    for source in sources:
        source = Path(source).resolve()
        if source == out or out in source.parents:
            raise DataError(
                out, None, f"--out contains the input {source}; choose a directory outside it"
            )
    if out.exists() and not out.is_dir():
        raise DataError(out, None, "--out is a file; expected a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / REPORT_NAME).is_file():
        raise DataError(
            out,
            None,
            f"--out is a non-empty directory not written by `drum data import` (no {REPORT_NAME});"
            " it would be replaced as a whole: choose a new directory",
        )


def write_import(
    out: Path,
    format_name: str,
    options: Any,
    sources: Iterable[Path],
    collect: Callable[[Path], ImportLog],
) -> ImportReport:
    """Collect the examples, write every split as ``<split>.jsonl`` in ``out``, validate each
    as ``drum data check`` does, and write ``import_report.json``; all as one directory swap.

    ``collect(staging_dir)`` reads the sources and returns the ``ImportLog``; it runs inside the
    staging directory that becomes ``out``, so images it copies or extracts there (under
    ``images/``) come with it. A split left with no example is an error naming what was skipped.
    """
    out = Path(out)
    check_out_dir(out, sources)
    with atomic_directory(out) as staging:
        log = collect(staging)
        written = {}
        for split, split_log in log.splits.items():
            if not split_log.examples:
                reasons = dict(split_log.skipped) or "nothing was found"
                raise DataError(
                    out, None, f"split {split!r}: no usable example; skipped: {reasons}"
                )
            path = staging / f"{split}.jsonl"
            written[split] = write_examples(path, split_log.examples)
            validate_dataset(path)
        if not written:
            raise DataError(out, None, "no split to write")
        logs = dict(log.splits)
        if log.unassigned.skipped:
            logs[UNASSIGNED] = log.unassigned
        report = ImportReport(
            format=format_name,
            out=out.resolve(),
            written=written,
            skipped={s: dict(sorted(lg.skipped.items())) for s, lg in logs.items()},
            samples={s: lg.samples for s, lg in logs.items() if lg.samples},
            options=_options_dict(options),
            unanswered={s: lg.unanswered for s, lg in log.splits.items()},
        )
        atomic_write_json(staging / REPORT_NAME, report.to_dict())
    return report


def parse_split_map(items: Iterable[str], option: str) -> dict[str, str]:
    """``["train=pool", "restval=pool"]`` -> ``{"train": "pool", "restval": "pool"}``."""
    mapping: dict[str, str] = {}
    for item in items:
        for part in item.split(","):
            source, sep, target = part.partition("=")
            if not sep or not source.strip() or not target.strip():
                raise ValueError(f"{option}: expected SOURCE=SPLIT pairs, got {part!r}")
            mapping[source.strip()] = target.strip()
    return mapping


def check_split_name(name: str) -> str:
    """An output split name usable as a file name (``pool``, ``queries``, ``val``)."""
    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise ValueError(f"split name {name!r}: expected a plain file name such as 'pool'")
    return name

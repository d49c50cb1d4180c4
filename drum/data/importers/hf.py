"""Hugging Face datasets on disk: a ``save_to_disk`` folder, or parquet / arrow files.

Read offline with the ``datasets`` library (imported only here). What the source can be:

* a folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk`` (its splits are
  the DatasetDict's; a lone Dataset is the split its info names, else ``train``);
* a ``.parquet`` or ``.arrow`` file, or a folder of them (searched recursively, as the Hub's
  ``data/`` layout): a file's split is its name up to the first ``-`` or ``.``
  (``train-00000-of-00002.parquet`` -> ``train``); files of one split are concatenated.

``split_map`` sends source splits to output splits (default train -> ``pool``, validation ->
``queries``); rows of other splits are left out and reported.

The columns are given by the options. The image column is an ``Image`` feature or a string path
(relative to ``image_root``, default the source's folder). An ``Image`` holding bytes is written
out as ``images/<split>/<row:07d>.<ext>`` under the output: the one case where an import writes
images. The answers column, per task type:

* vqa / caption: a list of strings, a list of objects with ``answer_key`` (default: the first of
  ``answer``, ``raw``, ``caption``, ``text`` present), the same as one object of lists (what a
  ``Sequence`` of dicts becomes), or one string. For vqa the most frequent answer goes first
  (``most_common_first``).
* classification: a ``ClassLabel`` (its name is the answer), a string, an integer (as text), or a
  list of strings (synonyms).
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drum.data.bundled import PHOTOS_PROMPT
from drum.data.example import TASK_TYPES, Example
from drum.data.images import ImageTooLarge, open_image
from drum.data.importers.base import (
    IMAGE_TOO_LARGE,
    OUTSIDE_IMAGE_ROOT,
    ImageChecker,
    ImportLog,
    ImportReport,
    SplitLog,
    Where,
    check_split_name,
    most_common_first,
    source_image,
    write_import,
)
from drum.data.importers.classification import CLASSIFICATION_PROMPT
from drum.data.jsonl import DataError
from drum.utils.io import atomic_write_bytes

if TYPE_CHECKING:
    from datasets import Dataset

DEFAULT_HF_SPLIT_MAP: dict[str, str] = {"train": "pool", "validation": "queries"}
ANSWER_KEYS = ("answer", "raw", "caption", "text")
DATA_FILE_SUFFIXES = (".parquet", ".arrow")
# PIL format -> file extension for images written out of the dataset's bytes.
_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "GIF": ".gif", "BMP": ".bmp", "WEBP": ".webp"}


@dataclass(frozen=True)
class HFOptions:
    """``drum data import hf``: where the dataset is and which column is what.

    Attributes:
        source: a ``save_to_disk`` folder, a parquet / arrow file, or a folder of them.
        task: the task type of every example (``vqa``, ``caption``, ``classification``).
        image_column: an ``Image`` feature or a string path.
        answers_column: the answers (see the module docstring).
        text_column: the question / text; ``None`` gives every example ``prompt``.
        prompt: the text when there is no text column (default per task: the caption /
            classification prompt; vqa needs a text column). With a text column it is a
            template whose ``{text}`` is replaced by the column's value.
        id_column: example ids (as strings); ``None`` gives ``<source split>-<row>``.
        answer_key: the key holding the answer in answer objects (default: auto).
        image_root: the folder string image paths are relative to (default: the source's).
        split_map: source split -> output split.
        copy_images: copy image files given by path into the output too.
    """

    source: Path
    task: str
    image_column: str = "image"
    answers_column: str = "answers"
    text_column: str | None = None
    prompt: str | None = None
    id_column: str | None = None
    answer_key: str | None = None
    image_root: Path | None = None
    split_map: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_HF_SPLIT_MAP))
    copy_images: bool = False

    def __post_init__(self) -> None:
        if self.task not in TASK_TYPES:
            raise ValueError(f"task must be one of {TASK_TYPES}, got {self.task!r}")
        if self.task == "vqa" and self.text_column is None:
            raise ValueError("a vqa dataset needs its question column: give text_column")
        if self.text_column is not None and self.prompt is not None and "{text}" not in self.prompt:
            raise ValueError(
                "with a text column the prompt is a template and needs {text}, "
                f"got {self.prompt!r}"
            )
        if not self.split_map:
            raise ValueError("split_map is empty: nothing would be imported")
        for target in self.split_map.values():
            check_split_name(target)

    def text_of(self, value: str | None) -> str:
        """The example's text given the text column's value (``None``: no text column)."""
        if value is None:
            if self.prompt is not None:
                return self.prompt
            return PHOTOS_PROMPT if self.task == "caption" else CLASSIFICATION_PROMPT
        return value if self.prompt is None else self.prompt.replace("{text}", value)


def _file_split(path: Path) -> str:
    """``train-00000-of-00001.parquet`` -> ``train``; ``validation.arrow`` -> ``validation``."""
    return path.name.split("-", 1)[0].split(".", 1)[0]


def load_splits(source: Path, cache_dir: Path) -> dict[str, Dataset]:
    """The source's splits by name (see the module docstring); ``cache_dir`` takes the arrow
    files ``datasets`` makes from parquet (a temporary folder: nothing goes to ~/.cache)."""
    import datasets

    if not source.exists():
        raise DataError(source, None, "not found; expected a save_to_disk folder or data files")
    if source.is_dir() and (
        (source / "dataset_dict.json").is_file() or (source / "state.json").is_file()
    ):
        try:
            loaded = datasets.load_from_disk(str(source))
        except (OSError, ValueError, FileNotFoundError) as error:
            raise DataError(source, None, f"not a loadable save_to_disk folder: {error}") from None
        if isinstance(loaded, datasets.DatasetDict):
            return dict(loaded)
        return {str(loaded.split) if loaded.split else "train": loaded}
    files = (
        [source]
        if source.is_file()
        else sorted(p for p in source.rglob("*") if p.suffix in DATA_FILE_SUFFIXES and p.is_file())
    )
    if not files or any(p.suffix not in DATA_FILE_SUFFIXES for p in files):
        raise DataError(
            source,
            None,
            "expected a save_to_disk folder (dataset_dict.json or state.json), a .parquet / "
            ".arrow file, or a folder of them",
        )
    by_split: dict[str, list[Path]] = {}
    for path in files:
        by_split.setdefault(_file_split(path), []).append(path)
    splits = {}
    for split, paths in by_split.items():
        try:
            if paths[0].suffix == ".parquet":
                splits[split] = datasets.Dataset.from_parquet(
                    [str(p) for p in paths], cache_dir=str(cache_dir)
                )
            else:
                splits[split] = datasets.concatenate_datasets(
                    [datasets.Dataset.from_file(str(p)) for p in paths]
                )
        except Exception as error:  # pyarrow raises its own types for a bad file
            raise DataError(
                paths[0], None, f"not a readable {paths[0].suffix} file: {error}"
            ) from None
    return splits


def _require_columns(dataset: Dataset, options: HFOptions, split: str) -> None:
    wanted = [options.image_column, options.answers_column, options.text_column, options.id_column]
    missing = [name for name in wanted if name is not None and name not in dataset.column_names]
    if missing:
        raise DataError(
            options.source,
            None,
            f"split {split!r}: no column(s) {missing}; columns: {dataset.column_names}",
        )


def _answer_key(items: dict[str, Any] | list[Any], options: HFOptions, where: Where) -> str:
    keys = items.keys() if isinstance(items, dict) else items[0].keys()
    if options.answer_key is not None:
        if options.answer_key not in keys:
            raise where.error(f"answer objects have no key {options.answer_key!r}: {sorted(keys)}")
        return options.answer_key
    for key in ANSWER_KEYS:
        if key in keys:
            return key
    raise where.error(f"answer objects have none of the keys {list(ANSWER_KEYS)}: {sorted(keys)}")


def _answers(
    value: Any, options: HFOptions, label_names: list[str] | None, where: Where
) -> list[str]:
    """The answer strings of one row's answers value (see the module docstring)."""
    if value is None:
        return []
    if options.task == "classification":
        if isinstance(value, bool):
            raise where.error(f"a label must be a string or an integer, got {value!r}")
        if isinstance(value, int):
            if label_names is None:
                return [str(value)]
            if not 0 <= value < len(label_names):  # -1: ClassLabel's "no label"
                return []
            return [label_names[value]]
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        key = _answer_key(value, options, where)
        value = value[key]
        if not isinstance(value, list):
            raise where.error(f"answers[{key!r}] must be a list, got {value!r:.80}")
    if isinstance(value, list):
        if value and all(isinstance(item, dict) for item in value):
            key = _answer_key(value, options, where)
            value = [item.get(key) for item in value]
        if all(isinstance(item, str) for item in value):
            return list(value)
    raise where.error(
        f"column {options.answers_column!r}: expected strings, objects with "
        f"{options.answer_key or list(ANSWER_KEYS)}, or a list of them; got {value!r:.120}"
    )


def _image_bytes_file(data: bytes, directory: Path, row: int) -> Path | str:
    """Write ``data`` as ``directory/<row:07d>.<ext>``; the skip reason if it is not usable."""
    try:
        with open_image(io.BytesIO(data)) as image:
            image_format = image.format
            image.load()
    except ImageTooLarge:
        return IMAGE_TOO_LARGE
    except (OSError, SyntaxError, ValueError):
        return "image bytes that do not decode as an image"
    extension = _EXTENSIONS.get(image_format or "", f".{(image_format or 'img').lower()}")
    path = directory / f"{row:07d}{extension}"
    atomic_write_bytes(path, data)
    return path


def _rows(dataset: Dataset, options: HFOptions) -> Iterator[dict[str, Any]]:
    """The rows, an ``Image`` column left undecoded (``{"bytes", "path"}``)."""
    import datasets

    feature = dataset.features[options.image_column]
    if isinstance(feature, datasets.Image):
        dataset = dataset.cast_column(options.image_column, datasets.Image(decode=False))
    elif not (isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string")):
        raise DataError(
            options.source,
            None,
            f"column {options.image_column!r} is a {feature}; expected an Image feature or a "
            "string path",
        )
    yield from dataset


def _collect_split(
    dataset: Dataset,
    split: str,
    options: HFOptions,
    log: SplitLog,
    images: ImageChecker,
    staging: Path,
) -> None:
    import datasets

    _require_columns(dataset, options, split)
    label_feature = dataset.features[options.answers_column]
    label_names = label_feature.names if isinstance(label_feature, datasets.ClassLabel) else None
    image_root = options.image_root or (
        options.source if options.source.is_dir() else options.source.parent
    )
    bytes_dir = staging / "images" / split
    for row_index, row in enumerate(_rows(dataset, options)):
        where = Where(options.source, record=f"{split}[{row_index}]")
        answers = _answers(row[options.answers_column], options, label_names, where)
        if not answers:
            log.skip("no answers (null, empty, or ClassLabel -1)", where)
            continue
        if not all(answer.strip() for answer in answers):
            log.skip("an empty answer string (DRUM answers must be non-empty)", where)
            continue
        text = None
        if options.text_column is not None:
            text = row[options.text_column]
            if not isinstance(text, str):
                log.skip(f"column {options.text_column!r} is not a string", where)
                continue
        image = row[options.image_column]
        if isinstance(image, dict) and image.get("bytes"):
            path = _image_bytes_file(image["bytes"], bytes_dir, row_index)
            if isinstance(path, str):
                log.skip(path, where)
                continue
        else:
            name = image.get("path") if isinstance(image, dict) else image
            if not name:
                log.skip("no image (null)", where)
                continue
            source_path = source_image(image_root, name)
            if source_path is None:
                log.skip(OUTSIDE_IMAGE_ROOT, f"{where} ({name})")
                continue
            problem = images.problem(source_path)
            if problem is not None:
                log.skip(problem, f"{where} ({source_path})")
                continue
            path = images.place(source_path, f"{split}/{Path(name).as_posix()}")
        example_id = (
            str(row[options.id_column]) if options.id_column is not None else f"{split}-{row_index}"
        )
        if options.task == "vqa":
            answers = most_common_first(answers)
        example = Example(
            id=example_id,
            images=(path,),
            text=options.text_of(text),
            answers=tuple(answers),
            task=options.task,
            meta={"source": "hf", "split": split, "row": row_index},
        )
        log.add(example, where)


def import_hf(options: HFOptions, out: Path) -> ImportReport:
    """Import a Hugging Face dataset on disk into ``out`` (offline)."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

    def collect(staging: Path) -> ImportLog:
        import datasets

        log = ImportLog()
        images = ImageChecker(staging / "images" if options.copy_images else None)
        was_disabled = datasets.are_progress_bars_disabled()
        datasets.disable_progress_bars()
        try:
            with tempfile.TemporaryDirectory(prefix="drum-hf-") as cache:
                splits = load_splits(options.source, Path(cache))
                unknown = sorted(set(options.split_map) - set(splits))
                if unknown:
                    raise DataError(
                        options.source,
                        None,
                        f"no split(s) {unknown} to map; the dataset has {sorted(splits)}",
                    )
                for split, dataset in splits.items():
                    if split not in options.split_map:
                        log.unassigned.skip(
                            f"source split {split!r} is mapped to no output split",
                            Where(options.source, record=split),
                            count=len(dataset),
                        )
                        continue
                    target = log.split(options.split_map[split])
                    _collect_split(dataset, split, options, target, images, staging)
        finally:
            if not was_disabled:
                datasets.enable_progress_bars()
        return log

    inputs = [options.source] + ([options.image_root] if options.image_root else [])
    return write_import(out, "hf", options, inputs, collect)

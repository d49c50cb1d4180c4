"""The DEMON benchmark's release layout: read and write tasks (predictions: ``predictions``).

DEMON ("Fine-tuning Multimodal LLMs to Follow Zero-shot Demonstrative Instructions", code in
``DCDmllm/Cheetah``) ships one folder per task::

    <root>/<Task>/core/core.json
    <root>/<Task>/core/images/<name>        # the names in images_path

    core.json = {"metadata": {"dataset", "split", "num_sample", "task_instruction": [str, ...],
                              "question_type"},
                 "data": [{"sample_id", "task_instruction_id",
                           "task_instance": {"context", "images_path": [...], "choice_list"?},
                           "response"}, ...]}

``context`` holds 1-based placeholders ``{image#k}`` and ``{table#k}``, both meaning
``images_path[k-1]`` (tables are shipped as images). What the task READMEs show, and what this
module accepts:

- the folder name is the task's name (what the reference scripts take as ``--dataset``); it
  may differ from ``metadata.dataset`` (``MultiModalQA/`` holds ``"MMQA"``, ``DiDeMoSV/``
  ``"DiDemoSV"``, ``FlintstonesSV/`` ``"Flintstones"``);
- ``response`` may be an integer (Fashion200K): ``DemonSample.response`` is its text, as the
  reference inference script makes it (``str(response)``), and ``response_raw`` keeps the
  integer so that the file writes back as it was;
- ``images_path`` may name one file twice (MMCoQA's ``{table#1}`` and ``{table#2}``);
- ``question_type`` is ``open-ended`` or ``multi-choice``, or empty (ALFRED), read here as
  ``open-ended`` (the reference ``evaluate.py`` answers "Dataset not supported" for it; the
  data report says so for each such task);
- in every README example the choices are written into ``context`` itself ("Choice
  List:['a', 'b'] Your answer is:") and there is no ``choice_list`` field; the reference
  inference script appends ``choice_list`` when a sample has one, and the reference
  ``evaluate.py`` needs it for the multi-choice tasks it scores by TF-IDF. It is read when
  present.

Errors are ``DemonFormatError``s naming the file, the sample and what was expected.
Predictions (``pred.json``) are read and written by ``drum.demon.predictions``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from drum.utils.io import atomic_open, atomic_write_text

SampleId = int | str
QUESTION_TYPES = ("open-ended", "multi-choice")
CORE_JSON = Path("core") / "core.json"
IMAGES_DIR = Path("core") / "images"

# Both kinds of placeholder index images_path from 1; the reference replaces exactly these.
PLACEHOLDER = re.compile(r"\{(?:image|table)#(\d+)\}")


class DemonFormatError(ValueError):
    """A DEMON file that does not follow the release layout; names the file, the sample (when
    there is one) and what was expected."""

    def __init__(
        self, path: str | os.PathLike[str], message: str, sample_id: SampleId | None = None
    ) -> None:
        where = str(path) if sample_id is None else f"{path}: sample_id {sample_id!r}"
        super().__init__(f"{where}: {message}")
        self.path = Path(path)
        self.sample_id = sample_id


class DemonFormatWarning(UserWarning):
    """A DEMON file that is usable but not what its metadata says (``num_sample``)."""


def placeholder_problem(text: str, n_images: int) -> str | None:
    """Why ``text`` cannot be shown with ``n_images`` images (a placeholder with no image), or
    None when every placeholder has its image."""
    for match in PLACEHOLDER.finditer(text):
        if not 1 <= int(match[1]) <= n_images:
            return (
                f"placeholder {match[0]} has no image: expected {{image#k}} / {{table#k}} with "
                f"1 <= k <= {n_images} (the sample's images_path has {n_images})"
            )
    return None


@dataclass(frozen=True)
class DemonSample:
    """One DEMON item: its task instruction (by index), context, images and answer.

    ``images`` are the files to show, in ``images_path`` order (a path may repeat);
    ``image_names`` are their names in the release (``images_path``; default each file's name),
    what the writer names the copies. ``choices`` is ``choice_list`` (None when the item has
    none), a list of strings. ``response`` is the answer's text; ``response_raw`` the value as
    the file holds it (a string, or an integer for Fashion200K; default ``response``).

    What the reference reads and scores is accepted here even when it looks wrong: a response
    that is not among its choices, an ``{image#k}`` / ``{table#k}`` with no image (the prompt
    keeps it as text, as the reference does). ``drum.demon.data_report`` lists such samples.

    Example::

        DemonSample(0, 2, "{image#1}{image#2}Question: What produces ozone?",
                    (Path("core/images/0.png"), Path("core/images/1.png")), None, "Oxygen")
    """

    sample_id: SampleId
    instruction_id: int
    context: str
    images: tuple[Path, ...]
    choices: tuple[str, ...] | None
    response: str
    response_raw: str | int | None = None
    image_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.sample_id, bool) or not isinstance(self.sample_id, int | str):
            raise ValueError(f"sample_id must be an integer or a string, got {self.sample_id!r}")
        if (
            isinstance(self.instruction_id, bool)
            or not isinstance(self.instruction_id, int)
            or self.instruction_id < 0
        ):
            raise ValueError(
                f"task_instruction_id must be a non-negative integer, got {self.instruction_id!r}"
            )
        if not isinstance(self.context, str):
            raise ValueError(f"context must be a string, got {type(self.context).__name__}")
        if not isinstance(self.response, str):
            raise ValueError(f"response must be a string, got {self.response!r}")
        object.__setattr__(self, "images", tuple(Path(image) for image in self.images))
        raw = self.response if self.response_raw is None else self.response_raw
        if isinstance(raw, bool) or not isinstance(raw, int | str) or str(raw) != self.response:
            raise ValueError(
                f"response_raw must be a string or an integer whose text is the response "
                f"{self.response!r}, got {raw!r}"
            )
        object.__setattr__(self, "response_raw", raw)
        names = (
            tuple(image.name for image in self.images)
            if self.image_names is None
            else tuple(self.image_names)
        )
        if len(names) != len(self.images):
            raise ValueError(
                f"image_names has {len(names)} names for {len(self.images)} images: {names!r}"
            )
        for name in names:
            # Names are written under <Task>/core/images/: nothing may point outside it.
            pure = PurePosixPath(name) if isinstance(name, str) else None
            if pure is None or not name or pure.is_absolute() or ".." in pure.parts:
                raise ValueError(
                    f"images_path must hold relative file names inside core/images/, got {name!r}"
                )
        object.__setattr__(self, "image_names", names)
        if self.choices is not None:
            choices = tuple(self.choices)
            # The reference's inference script joins the choices as text: anything else stops it.
            # A response outside its choices, or a placeholder with no image, does not stop it:
            # read here, reported by drum.demon.data_report.
            if not all(isinstance(choice, str) for choice in choices):
                raise ValueError(f"choice_list must be a list of strings, got {self.choices!r}")
            object.__setattr__(self, "choices", choices)


def _instruction_problem(sample: DemonSample, n_instructions: int) -> str | None:
    if sample.instruction_id < n_instructions:
        return None
    return (
        f"task_instruction_id {sample.instruction_id} is out of range: expected 0 to "
        f"{n_instructions - 1} (metadata.task_instruction has {n_instructions})"
    )


@dataclass(frozen=True)
class DemonTask:
    """One DEMON task: ``name`` is its folder (what the reference scripts call the dataset),
    ``dataset`` and ``split`` its metadata, ``instructions`` the task instructions a sample
    picks by index, ``question_type`` ``open-ended`` or ``multi-choice`` (an empty one is read
    as ``open-ended``, and ``question_type_empty`` says so: the data report names it).

    Example::

        task = read_demon_task("DEMON-Core/MultiModalQA")
        task.name, task.dataset, len(task.samples)   # ('MultiModalQA', 'MMQA', 500)
    """

    name: str
    dataset: str
    split: str
    instructions: tuple[str, ...]
    question_type: str
    samples: tuple[DemonSample, ...]
    # The metadata's question_type was "": scored as question_type, which the reference does not
    # (it skips the task). Not compared: a task written back has its type spelled out.
    question_type_empty: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        for label, value in (("name", self.name), ("dataset", self.dataset)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"task {label} must be a non-empty string, got {value!r}")
        if self.name in (".", "..") or "/" in self.name or "\\" in self.name:
            raise ValueError(f"task name must be a folder name, got {self.name!r}")
        if not isinstance(self.split, str):
            raise ValueError(f"split must be a string, got {self.split!r}")
        instructions = tuple(self.instructions)
        if not instructions or not all(isinstance(text, str) for text in instructions):
            raise ValueError(
                f"task_instruction must be a non-empty list of strings, got {self.instructions!r}"
            )
        object.__setattr__(self, "instructions", instructions)
        if self.question_type not in QUESTION_TYPES:
            raise ValueError(
                f"question_type must be one of {QUESTION_TYPES}, got {self.question_type!r}"
            )
        object.__setattr__(self, "samples", tuple(self.samples))
        seen: set[SampleId] = set()
        for sample in self.samples:
            problem = _instruction_problem(sample, len(instructions))
            if problem:
                raise ValueError(f"sample_id {sample.sample_id!r}: {problem}")
            # Predictions are keyed by sample_id, as the reference evaluate.py keys them.
            if sample.sample_id in seen:
                raise ValueError(f"sample_id {sample.sample_id!r} appears twice")
            seen.add(sample.sample_id)

    def sample(self, sample_id: SampleId) -> DemonSample:
        """The sample with this id."""
        for sample in self.samples:
            if sample.sample_id == sample_id:
                return sample
        raise KeyError(f"task {self.name!r} has no sample_id {sample_id!r}")


# ----------------------------------------------------------------------------- reading


def load_json(path: Path) -> Any:
    """The JSON in ``path`` (a BOM allowed); a ``DemonFormatError`` naming the file and the
    line and column otherwise."""
    if not path.is_file():
        raise DemonFormatError(path, "file not found")
    try:
        # utf-8-sig: a byte-order mark at the start is accepted, as for DRUM's JSONL.
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as error:
        raise DemonFormatError(path, f"not UTF-8 text: {error}") from None
    except json.JSONDecodeError as error:
        raise DemonFormatError(
            path, f"malformed JSON at line {error.lineno} column {error.colno}: {error.msg}"
        ) from None


def require_fields(
    record: Any, keys: Sequence[str], where: str, path: Path, sid: Any = None
) -> None:
    """A ``DemonFormatError`` naming ``where`` unless ``record`` is an object with ``keys``."""
    if not isinstance(record, dict):
        raise DemonFormatError(
            path, f"{where} must be a JSON object, got {type(record).__name__}", sid
        )
    missing = [key for key in keys if key not in record]
    if missing:
        raise DemonFormatError(
            path, f"{where} is missing {missing}; expected the fields {list(keys)}", sid
        )


def _parse_sample(item: Any, index: int, images_dir: Path, path: Path) -> DemonSample:
    sid = item.get("sample_id") if isinstance(item, dict) else None
    sid = sid if isinstance(sid, int | str) and not isinstance(sid, bool) else None
    where = f"data[{index}]"
    require_fields(
        item, ("sample_id", "task_instruction_id", "task_instance", "response"), where, path, sid
    )
    instance = item["task_instance"]
    require_fields(instance, ("context", "images_path"), f"{where}.task_instance", path, sid)
    names = instance["images_path"]
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise DemonFormatError(
            path, f"images_path must be a list of file names, got {names!r}", sid
        )
    raw = item["response"]
    try:
        sample = DemonSample(
            sample_id=item["sample_id"],
            instruction_id=item["task_instruction_id"],
            context=instance["context"],
            images=tuple(images_dir / name for name in names),
            choices=instance.get("choice_list"),
            response=str(raw) if isinstance(raw, int) and not isinstance(raw, bool) else raw,
            response_raw=raw,
            image_names=tuple(names),
        )
    except ValueError as error:
        raise DemonFormatError(path, str(error), sid) from None
    return sample


def read_demon_task(task_dir: str | os.PathLike[str], verify_images: bool = True) -> DemonTask:
    """Read ``<task_dir>/core/core.json``; the task's name is the folder's.

    Refused, as the reference cannot process them: a malformed file or field, an instruction
    index out of range, a sample_id twice and, with ``verify_images``, an image file missing
    from ``core/images/`` (existence only: ``decode_images`` decodes them). What only looks
    wrong (a response outside its choices, a placeholder with no image, an empty question
    type) is read as the reference reads it; ``drum.demon.data_report`` lists it.

    Example::

        task = read_demon_task("DEMON-Core/Fashion200K")
        task.samples[0].response, task.samples[0].response_raw   # ('4', 4)
    """
    task_dir = Path(task_dir)
    path = task_dir / CORE_JSON
    images_dir = task_dir / IMAGES_DIR
    record = load_json(path)
    require_fields(record, ("metadata", "data"), "the top level", path)
    metadata = record["metadata"]
    keys = ("dataset", "split", "num_sample", "task_instruction", "question_type")
    require_fields(metadata, keys, "metadata", path)
    question_type = metadata["question_type"]
    if question_type not in (*QUESTION_TYPES, ""):
        raise DemonFormatError(
            path,
            f"metadata.question_type must be one of {QUESTION_TYPES} or empty, "
            f"got {question_type!r}",
        )
    data = record["data"]
    if not isinstance(data, list):
        raise DemonFormatError(path, f"'data' must be a list, got {type(data).__name__}")
    instructions = metadata["task_instruction"]
    if (
        not isinstance(instructions, list)
        or not instructions
        or not all(isinstance(text, str) for text in instructions)
    ):
        raise DemonFormatError(
            path, "metadata.task_instruction must be a non-empty list of strings"
        )
    samples: list[DemonSample] = []
    seen: set[SampleId] = set()
    checked: set[Path] = set()
    for index, item in enumerate(data):
        sample = _parse_sample(item, index, images_dir, path)
        problem = _instruction_problem(sample, len(instructions))
        if problem:
            raise DemonFormatError(path, problem, sample.sample_id)
        if sample.sample_id in seen:
            raise DemonFormatError(path, "sample_id appears twice", sample.sample_id)
        seen.add(sample.sample_id)
        if verify_images:
            for image in sample.images:
                if image not in checked and not image.is_file():
                    raise DemonFormatError(
                        path,
                        f"image not found: {image} (expected under {images_dir})",
                        sample.sample_id,
                    )
                checked.add(image)
        samples.append(sample)
    if metadata["num_sample"] != len(samples):
        warnings.warn(
            f"{path}: metadata.num_sample is {metadata['num_sample']!r} but 'data' holds "
            f"{len(samples)} samples",
            DemonFormatWarning,
            stacklevel=2,
        )
    try:
        return DemonTask(
            name=Path(os.path.abspath(task_dir)).name,  # as given, symlinks not followed
            dataset=metadata["dataset"],
            split=metadata["split"],
            instructions=tuple(instructions),
            question_type=question_type or "open-ended",
            samples=tuple(samples),
            question_type_empty=question_type == "",
        )
    except ValueError as error:
        raise DemonFormatError(path, str(error)) from None


def demon_task_names(root: str | os.PathLike[str]) -> list[str]:
    """The task folders under ``root`` (those holding ``core/core.json``), sorted."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(child.name for child in root.iterdir() if (child / CORE_JSON).is_file())


def read_demon_root(
    root: str | os.PathLike[str], tasks: Iterable[str] | None = None, verify_images: bool = True
) -> list[DemonTask]:
    """Every task under ``root`` (sorted by folder name), or the named ones in the order given.

    A requested task that is not there is a ``DemonFormatError`` listing the tasks found (and
    the one differing only in case, e.g. the reference script's ``nuscenes`` for ``nuScenes``).

    Example::

        core = read_demon_root("DEMON-Core", tasks=["MMCoQA", "ALFRED"])
    """
    root = Path(root)
    found = demon_task_names(root)
    if tasks is None:
        if not found:
            raise DemonFormatError(root, f"no task folders (<Task>/{CORE_JSON.as_posix()}) found")
        names = found
    else:
        names = list(tasks)
        for name in names:
            if name not in found:
                close = [other for other in found if other.lower() == name.lower()]
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise DemonFormatError(
                    root,
                    f"no task {name!r}: expected {name}/{CORE_JSON.as_posix()}{hint}; "
                    f"tasks found: {found}",
                )
    return [read_demon_task(root / name, verify_images) for name in names]


# ----------------------------------------------------------------------------- writing


def _sample_record(sample: DemonSample) -> dict[str, Any]:
    instance: dict[str, Any] = {"context": sample.context, "images_path": list(sample.image_names)}
    if sample.choices is not None:
        instance["choice_list"] = list(sample.choices)
    return {
        "sample_id": sample.sample_id,
        "task_instruction_id": sample.instruction_id,
        "task_instance": instance,
        "response": sample.response_raw,
    }


def task_record(task: DemonTask) -> dict[str, Any]:
    """``core.json`` of ``task`` as the release lays it out (keys in the release's order)."""
    return {
        "metadata": {
            "dataset": task.dataset,
            "split": task.split,
            "num_sample": len(task.samples),
            "task_instruction": list(task.instructions),
            "question_type": task.question_type,
        },
        "data": [_sample_record(sample) for sample in task.samples],
    }


def _image_sources(task: DemonTask, path: Path) -> dict[str, Path]:
    """Each release name and the one file it is copied from."""
    sources: dict[str, Path] = {}
    for sample in task.samples:
        for name, image in zip(sample.image_names or (), sample.images, strict=True):
            known = sources.setdefault(name, image)
            if known != image and known.resolve() != image.resolve():
                raise DemonFormatError(
                    path,
                    f"image name {name!r} stands for two files, {known} and {image}: "
                    "expected one file per name in core/images/",
                    sample.sample_id,
                )
            if not image.is_file():
                raise DemonFormatError(path, f"image not found: {image}", sample.sample_id)
    return sources


def write_demon_task(task: DemonTask, root: str | os.PathLike[str]) -> Path:
    """Write ``task`` under ``<root>/<task.name>/core/`` in the release layout; return the task
    folder.

    Every image is copied (atomically, file by file) to ``core/images/<its name>`` unless it
    is that file already, then ``core.json`` is written atomically, last, so a killed write
    leaves the old ``core.json`` or a new one whose images are all there. Reading the folder
    back gives ``task`` with the images at their new place. JSON is indented by 4, UTF-8
    unescaped.

    Example::

        write_demon_task(read_demon_task("DEMON-Core/TQA"), "subset/")  # subset/TQA/core/...
    """
    task_dir = Path(root) / task.name
    path = task_dir / CORE_JSON
    images_dir = task_dir / IMAGES_DIR
    for name, source in _image_sources(task, path).items():
        target = images_dir / name
        if target.exists() and target.resolve() == source.resolve():
            continue
        with atomic_open(target, "wb") as handle, source.open("rb") as original:
            shutil.copyfileobj(original, handle)
    atomic_write_text(path, json.dumps(task_record(task), indent=4, ensure_ascii=False) + "\n")
    return task_dir

"""Classification importers: an image folder per class (torchvision's ``ImageFolder``), and the
Hateful Memes JSONL files.

* ``image-folder``: ``<root>/<class>/**/<image>``, one root per split (e.g. ``train/`` and
  ``val/``). As ``ImageFolder``: the classes are the sub-folders of the root, images are found
  under each class folder recursively (symlinks followed), by extension (``IMAGE_EXTENSIONS``,
  any case). Other files are skipped and reported. ``id`` is the image's path under the root.
* ``hateful-memes``: ``{"id", "img", "label", "text"}`` per line (``img`` relative to the
  dataset folder, e.g. ``img/42953.png``; ``label`` 0 or 1, absent from the test files).

Each example's ``answers`` is its one label (``("cat",)``, or for Hateful Memes
``label_names[label]``), which ``accuracy`` compares with the prediction; ``text`` is the prompt:
``CLASSIFICATION_PROMPT`` for folders, and for memes ``meme_prompt`` with the meme's own text
filled in (``{text}``), since the text is half of what makes a meme hateful.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from drum.data.example import Example
from drum.data.importers.base import (
    IMAGE_EXTENSIONS,
    OUTSIDE_IMAGE_ROOT,
    ImageChecker,
    ImportLog,
    ImportReport,
    SplitLog,
    Where,
    check_split_name,
    read_jsonl,
    require,
    source_image,
    write_import,
)

CLASSIFICATION_PROMPT = "what is this?"
MEME_PROMPT = 'is this meme hateful? its text: "{text}"'
MEME_LABELS = ("not hateful", "hateful")


@dataclass(frozen=True)
class FolderSource:
    """One split: a folder with one sub-folder per class."""

    split: str
    root: Path

    def __post_init__(self) -> None:
        check_split_name(self.split)


@dataclass(frozen=True)
class ImageFolderOptions:
    """``drum data import image-folder``: one class-folder root per output split."""

    sources: tuple[FolderSource, ...]
    prompt: str = CLASSIFICATION_PROMPT
    copy_images: bool = False

    def __post_init__(self) -> None:
        if not self.sources:
            raise ValueError("at least one split folder is needed")
        splits = [source.split for source in self.sources]
        if len(set(splits)) != len(splits):
            raise ValueError(f"each output split may be given once, got {splits}")


@dataclass(frozen=True)
class MemeSource:
    """One split of Hateful Memes: a ``train.jsonl`` / ``dev_seen.jsonl`` / ... file."""

    split: str
    file: Path

    def __post_init__(self) -> None:
        check_split_name(self.split)


@dataclass(frozen=True)
class HatefulMemesOptions:
    """``drum data import hateful-memes``.

    ``root`` is the folder the ``img`` paths are relative to (default: each file's folder);
    ``label_names`` are the answers for labels 0 and 1; ``meme_prompt`` the example's text, with
    ``{text}`` replaced by the meme's text.
    """

    sources: tuple[MemeSource, ...]
    root: Path | None = None
    label_names: tuple[str, str] = MEME_LABELS
    meme_prompt: str = MEME_PROMPT
    copy_images: bool = False

    def __post_init__(self) -> None:
        if not self.sources:
            raise ValueError("at least one split file is needed")
        splits = [source.split for source in self.sources]
        if len(set(splits)) != len(splits):
            raise ValueError(f"each output split may be given once, got {splits}")
        if len(self.label_names) != 2 or not all(name.strip() for name in self.label_names):
            raise ValueError(f"label_names must be two non-empty names, got {self.label_names!r}")
        if "{text}" not in self.meme_prompt:
            raise ValueError(f"meme_prompt must contain {{text}}, got {self.meme_prompt!r}")


def _collect_folder(source: FolderSource, log: SplitLog, images: ImageChecker, prompt: str) -> None:
    root = source.root
    if not root.is_dir():
        raise Where(root).error("not a directory; expected one sub-folder per class")
    classes = sorted(entry.name for entry in os.scandir(root) if entry.is_dir())
    if not classes:
        raise Where(root).error("no class folder; expected <root>/<class>/<image> (ImageFolder)")
    for name in sorted(entry.name for entry in os.scandir(root) if entry.is_file()):
        log.skip("a file beside the class folders (not in any class)", Where(root / name))
    for label in classes:
        found = 0
        for folder, _, files in sorted(os.walk(root / label, followlinks=True)):
            for file_name in sorted(files):
                path = Path(folder) / file_name
                where = Where(path)
                if path.suffix.lower() not in IMAGE_EXTENSIONS:
                    log.skip(f"not an image file extension ({', '.join(IMAGE_EXTENSIONS)})", where)
                    continue
                relative = path.relative_to(root).as_posix()
                problem = images.problem(path)
                if problem is not None:
                    log.skip(problem, where)
                    continue
                found += 1
                example = Example(
                    id=relative,
                    images=(images.place(path, f"{root.name}/{relative}"),),
                    text=prompt,
                    answers=(label,),
                    task="classification",
                    meta={"source": "image-folder", "label": label, "path": relative},
                )
                log.add(example, where)
        if not found:
            log.skip("class folder without a usable image", Where(root / label))


def import_image_folder(options: ImageFolderOptions, out: Path) -> ImportReport:
    """Import class folders (torchvision ``ImageFolder`` layout) into ``out``."""

    def collect(staging: Path) -> ImportLog:
        log = ImportLog()
        images = ImageChecker(staging / "images" if options.copy_images else None)
        for source in options.sources:
            _collect_folder(source, log.split(source.split), images, options.prompt)
        return log

    return write_import(out, "image-folder", options, [s.root for s in options.sources], collect)


def _collect_memes(
    source: MemeSource, options: HatefulMemesOptions, log: SplitLog, images: ImageChecker
) -> None:
    root = options.root if options.root is not None else source.file.parent
    what = 'a Hateful Memes object {"id", "img", "label", "text"}'
    for line, record in read_jsonl(source.file, what):
        where = Where(source.file, line=line)
        meme_id = require(record, "id", (int, str), where)
        image = require(record, "img", str, where)
        text = require(record, "text", str, where)
        if "label" not in record:
            log.skip("no label (an unlabelled meme, e.g. of a test split)", where)
            continue
        label = require(record, "label", int, where)
        if label not in (0, 1):
            raise where.error(f"field 'label' must be 0 or 1, got {label!r}")
        path = source_image(root, image)
        if path is None:
            log.skip(OUTSIDE_IMAGE_ROOT, f"{where} ({image})")
            continue
        problem = images.problem(path)
        if problem is not None:
            log.skip(problem, f"{where} ({path})")
            continue
        example = Example(
            id=str(meme_id),
            images=(images.place(path, image),),
            text=options.meme_prompt.replace("{text}", text),
            answers=(options.label_names[label],),
            task="classification",
            meta={"source": "hateful-memes", "label": label, "img": image, "meme_text": text},
        )
        log.add(example, where)


def import_hateful_memes(options: HatefulMemesOptions, out: Path) -> ImportReport:
    """Import Hateful Memes JSONL files (one per output split) into ``out``."""

    def collect(staging: Path) -> ImportLog:
        log = ImportLog()
        images = ImageChecker(staging / "images" if options.copy_images else None)
        for source in options.sources:
            _collect_memes(source, options, log.split(source.split), images)
        return log

    inputs = [s.file for s in options.sources]
    if options.root is not None:
        inputs.append(options.root)
    return write_import(out, "hateful-memes", options, inputs, collect)

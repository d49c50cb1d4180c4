"""Classification importers: an image folder per class (torchvision's ``ImageFolder``), and the
Hateful Memes JSONL files.

* ``image-folder``: ``<root>/<class>/**/<image>``, one root per split (e.g. ``train/`` and
  ``val/``). As ``ImageFolder``: the classes are the sub-folders of the root, images are found
  under each class folder recursively, by extension (``IMAGE_EXTENSIONS``, any case). Other
  files are skipped and reported. ``id`` is the image's path under the root. Each real folder is
  read once: a class folder may be a link from elsewhere, but not to the root, into it or above
  it; directory links inside a class folder are not followed (``os.walk`` would loop on one
  pointing back up); links to image files are read. A name that is not UTF-8 cannot be a JSONL
  path or a label: it is skipped and listed with its bytes escaped. Each skip is counted by
  reason in the report.
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
# Skip reasons of the image-folder walk.
DIRECTORY_LINK = "a directory link inside a class folder (not followed: it could loop or repeat)"
CLASS_LINK_INSIDE = (
    "a class folder linking to the root, into it, above it or to another class link's target "
    "(not followed: its images would be read twice or under two labels)"
)
NOT_UTF8_NAME = "a file or folder name that is not UTF-8 (JSONL paths and labels are UTF-8 text)"


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


def _shown(path: Path | str) -> str:
    """``path`` as text that prints and saves as JSON: bytes that are not UTF-8 escaped
    (``caf\\xe9.jpg``) instead of the lone surrogates Python decodes them to."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # a byte that is not UTF-8, decoded as a lone surrogate
        return False
    return True


def _within(path: str, folder: str) -> bool:
    """Whether the real path ``path`` is ``folder`` or inside it."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _class_folders(root: Path, log: SplitLog) -> list[str]:
    """The class names: the root's sub-folders, each real folder read once.

    A class folder may be a link (a class linked in from elsewhere), unless its target is the
    root, a folder in it or above it, or an earlier class link's: its images would be read
    twice, under two labels, or without end.
    """
    entries = sorted(os.scandir(root), key=lambda entry: entry.name)
    for entry in entries:
        if entry.is_file():
            log.skip("a file beside the class folders (not in any class)", _shown(entry.path))
    real_root = os.path.realpath(root)
    read = [real_root]
    classes = []
    for entry in entries:
        if not entry.is_dir():
            continue
        if not _is_utf8(entry.name):
            log.skip(NOT_UTF8_NAME, _shown(entry.path))
            continue
        if entry.is_symlink():
            real = os.path.realpath(entry.path)
            if any(_within(real, done) or _within(done, real) for done in read):
                log.skip(CLASS_LINK_INSIDE, _shown(entry.path))
                continue
            read.append(real)
        classes.append(entry.name)
    return classes


def _collect_folder(source: FolderSource, log: SplitLog, images: ImageChecker, prompt: str) -> None:
    root = source.root
    if not root.is_dir():
        raise Where(root).error("not a directory; expected one sub-folder per class")
    if not any(entry.is_dir() for entry in os.scandir(root)):
        raise Where(root).error("no class folder; expected <root>/<class>/<image> (ImageFolder)")
    for label in _class_folders(root, log):
        found = 0
        # Directory links inside a class folder are not followed (a link back up loops: four
        # images once became 164 examples); each is reported.
        for folder, folders, files in sorted(os.walk(root / label)):
            for name in sorted(folders):
                if os.path.islink(os.path.join(folder, name)):
                    log.skip(DIRECTORY_LINK, _shown(os.path.join(folder, name)))
            for file_name in sorted(files):
                path = Path(folder) / file_name
                where = Where(path)
                relative = path.relative_to(root).as_posix()
                if not _is_utf8(relative):
                    log.skip(NOT_UTF8_NAME, _shown(path))
                    continue
                if path.suffix.lower() not in IMAGE_EXTENSIONS:
                    log.skip(f"not an image file extension ({', '.join(IMAGE_EXTENSIONS)})", where)
                    continue
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

"""Captioning importers: COCO's official caption files and the Karpathy split files.

* Official (``captions_<split>.json``): ``{"images": [{"id", "file_name", ...}],
  "annotations": [{"image_id", "caption", ...}]}`` plus the image folder. One example per image:
  ``id`` the image id, ``answers`` its captions in file order (the references CIDEr, BLEU and
  ROUGE-L score against; the first is what a demonstration shows).
* Karpathy (``dataset_coco.json``, ``dataset_flickr30k.json``): ``{"images": [{"filepath"?,
  "filename", "split", "sentences": [{"raw", ...}], "imgid", "cocoid"?}]}``, images under
  ``<images>/<filepath>/<filename>`` (``filepath`` is absent for Flickr30k). Each record's
  ``split`` (train / restval / val / test) goes to the output split ``split_map`` names, by
  default train + restval -> ``pool`` and test -> ``queries``; val is then left out (reported).

The example's ``text`` is the prompt (``PHOTOS_PROMPT`` unless given), as for every caption
dataset DRUM writes. Captions are kept as written (no case or whitespace change).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drum.data.bundled import PHOTOS_PROMPT
from drum.data.example import Example
from drum.data.importers.base import (
    OUTSIDE_IMAGE_ROOT,
    ImageChecker,
    ImportLog,
    ImportReport,
    SplitLog,
    Where,
    answer_strings,
    check_split_name,
    read_json,
    require,
    require_dir,
    source_image,
    write_import,
)

NO_CAPTION = "no caption (an image without references, e.g. of a test split)"
EMPTY_CAPTION = "an empty caption (left out; the image keeps its other captions)"
KARPATHY_SPLITS = ("train", "restval", "val", "test")
DEFAULT_KARPATHY_MAP: dict[str, str] = {"train": "pool", "restval": "pool", "test": "queries"}


@dataclass(frozen=True)
class CocoCaptionSource:
    """One split of COCO's official captions: ``captions_<split>.json`` and its image folder."""

    split: str
    captions: Path
    images: Path

    def __post_init__(self) -> None:
        check_split_name(self.split)


@dataclass(frozen=True)
class KarpathySource:
    """A Karpathy split file; ``images`` is the folder ``filepath/filename`` are relative to."""

    file: Path
    images: Path
    split_map: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_KARPATHY_MAP))

    def __post_init__(self) -> None:
        unknown = sorted(set(self.split_map) - set(KARPATHY_SPLITS))
        if unknown:
            raise ValueError(
                f"Karpathy split(s) {unknown} unknown; the files use {list(KARPATHY_SPLITS)}"
            )
        if not self.split_map:
            raise ValueError("the Karpathy split map is empty: nothing would be imported")
        for target in self.split_map.values():
            check_split_name(target)


@dataclass(frozen=True)
class CaptionOptions:
    """``drum data import coco-captions``: official caption files, or one Karpathy file."""

    sources: tuple[CocoCaptionSource, ...] = ()
    karpathy: KarpathySource | None = None
    prompt: str = PHOTOS_PROMPT
    copy_images: bool = False

    def __post_init__(self) -> None:
        if bool(self.sources) == (self.karpathy is not None):
            raise ValueError(
                "give either official caption files (captions_<split>.json) or one Karpathy "
                "split file (dataset_coco.json / dataset_flickr30k.json), not both or neither"
            )
        splits = [source.split for source in self.sources]
        if len(set(splits)) != len(splits):
            raise ValueError(f"each output split may be given once, got {splits}")


def _add_caption_example(
    log: SplitLog,
    images: ImageChecker,
    where: Where,
    image: Path,
    copy_name: str,
    example_id: str,
    captions: list[str],
    prompt: str,
    meta: dict[str, Any],
) -> None:
    kept = []
    for caption in captions:
        if caption.strip():
            kept.append(caption)
        else:
            log.skip(EMPTY_CAPTION, where)
    if not kept:
        log.skip(NO_CAPTION, where)
        return
    problem = images.problem(image)
    if problem is not None:
        log.skip(problem, f"{where} ({image})")
        return
    example = Example(
        id=example_id,
        images=(images.place(image, copy_name),),
        text=prompt,
        answers=tuple(kept),
        task="caption",
        meta=meta,
    )
    log.add(example, where)


def _collect_official(
    source: CocoCaptionSource, log: SplitLog, images: ImageChecker, prompt: str
) -> None:
    data = read_json(
        source.captions,
        dict,
        'a COCO captions file: an object with "images" and "annotations" arrays',
    )
    image_records = require(data, "images", list, Where(source.captions))
    require_dir(source.images, "the COCO image folder of this captions file")
    annotations = data.get("annotations", [])  # image_info_test*.json has none
    if not isinstance(annotations, list):
        raise Where(source.captions).error(
            f"field 'annotations' must be an array, got {annotations!r:.80}"
        )
    by_id: dict[int, tuple[Where, dict[str, Any]]] = {}
    for index, record in enumerate(image_records):
        where = Where(source.captions, record=f"images[{index}]")
        if not isinstance(record, dict):
            raise where.error(f"expected an object, got {record!r}")
        image_id = require(record, "id", int, where)
        require(record, "file_name", str, where)
        if image_id in by_id:
            log.skip("duplicate image id in 'images' (the first is kept)", where)
            continue
        by_id[image_id] = (where, record)
    captions: dict[int, list[str]] = {}
    for index, annotation in enumerate(annotations):
        where = Where(source.captions, record=f"annotations[{index}]")
        if not isinstance(annotation, dict):
            raise where.error(f"expected an object, got {annotation!r}")
        image_id = require(annotation, "image_id", int, where)
        caption = require(annotation, "caption", str, where)
        if image_id not in by_id:
            log.skip("caption for an image_id not in 'images'", where)
            continue
        captions.setdefault(image_id, []).append(caption)
    for image_id, (where, record) in by_id.items():
        name = record["file_name"]
        image = source_image(source.images, name)
        if image is None:
            log.skip(OUTSIDE_IMAGE_ROOT, f"{where} ({name})")
            continue
        _add_caption_example(
            log,
            images,
            where,
            image,
            f"{source.images.name}/{name}",
            str(image_id),
            captions.get(image_id, []),
            prompt,
            {"source": "coco-captions", "image_id": image_id, "file_name": name},
        )


def _collect_karpathy(
    source: KarpathySource, log: ImportLog, images: ImageChecker, prompt: str
) -> None:
    data = read_json(
        source.file,
        dict,
        'a Karpathy split file (dataset_coco.json): an object with an "images" array',
    )
    records = require(data, "images", list, Where(source.file))
    require_dir(source.images, "the folder the Karpathy filepath/filename are relative to")
    for target in dict.fromkeys(source.split_map.values()):
        log.split(target)  # every mapped split is written, or its emptiness reported
    for index, record in enumerate(records):
        where = Where(source.file, record=f"images[{index}]")
        if not isinstance(record, dict):
            raise where.error(f"expected an object, got {record!r}")
        filename = require(record, "filename", str, where)
        split = require(record, "split", str, where)
        sentences = require(record, "sentences", list, where)
        filepath = record.get("filepath", "")
        if not isinstance(filepath, str):
            raise where.error(f"field 'filepath' must be a string, got {filepath!r}")
        if split not in KARPATHY_SPLITS:
            raise where.error(
                f"field 'split' must be one of {list(KARPATHY_SPLITS)}, got {split!r}"
            )
        if split not in source.split_map:
            log.unassigned.skip(f"Karpathy split {split!r} is mapped to no output split", where)
            continue
        identifier = record.get("cocoid", record.get("imgid", Path(filename).stem))
        meta: dict[str, Any] = {"source": "karpathy", "filename": filename, "split": split}
        for key in ("cocoid", "imgid"):
            if key in record:
                meta[key] = record[key]
        relative = Path(filepath) / filename
        image = source_image(source.images, str(relative))
        if image is None:
            log.split(source.split_map[split]).skip(OUTSIDE_IMAGE_ROOT, f"{where} ({relative})")
            continue
        _add_caption_example(
            log.split(source.split_map[split]),
            images,
            where,
            image,
            relative.as_posix(),
            str(identifier),
            answer_strings(sentences, "raw", where, name="sentences"),
            prompt,
            meta,
        )


def import_coco_captions(options: CaptionOptions, out: Path) -> ImportReport:
    """Import COCO captions (official files per split, or a Karpathy split file) into ``out``."""

    def collect(staging: Path) -> ImportLog:
        log = ImportLog()
        images = ImageChecker(staging / "images" if options.copy_images else None)
        for source in options.sources:
            _collect_official(source, log.split(source.split), images, options.prompt)
        if options.karpathy is not None:
            _collect_karpathy(options.karpathy, log, images, options.prompt)
        return log

    inputs = [p for s in options.sources for p in (s.captions, s.images)]
    if options.karpathy is not None:
        inputs += [options.karpathy.file, options.karpathy.images]
    return write_import(out, "coco-captions", options, inputs, collect)

"""Importers: public benchmarks, in their official files, to DRUM JSONL.

``drum data import FORMAT ... --out DIR`` (or ``import_dataset``) writes one ``<split>.jsonl``
per output split into ``DIR``, image paths relative to it, validated as ``drum data check``
validates, and ``import_report.json`` with what was skipped and why (``drum.data.importers.base``).

Formats (the registry ``FORMATS``; each an ``ImportFormat``, its options a typed dataclass):

=================  ==============  ==================================================
name               task            inputs (per output split)
=================  ==============  ==================================================
``vqav2``          vqa             questions + annotations JSON (or none: a test
                                   split, answerless queries), COCO image folder
``okvqa``          vqa             the same layout as VQAv2
``vizwiz``         vqa             annotations JSON array, image folder
``coco-captions``  caption         ``captions_<split>.json`` + images, or a Karpathy file
``image-folder``   classification  ``<root>/<class>/<image>`` (torchvision ImageFolder)
``hateful-memes``  classification  ``{"id", "img", "label", "text"}`` JSONL
``hf``             any             a ``save_to_disk`` folder or parquet / arrow files
=================  ==============  ==================================================

Only ``hf`` imports the ``datasets`` library, and only when it runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drum.data.importers.base import REPORT_NAME, ImportReport
from drum.registry import Registry


@dataclass(frozen=True)
class ImportFormat:
    """A format: its options dataclass and the function that imports it."""

    name: str
    task: str  # the task type it produces ("any" for hf: the options say)
    options: type
    run: Callable[[Any, Path], ImportReport]


FORMATS = Registry("import format")
FORMATS.register("vqav2", "drum.data.importers.formats:VQAV2")
FORMATS.register("okvqa", "drum.data.importers.formats:OKVQA")
FORMATS.register("vizwiz", "drum.data.importers.formats:VIZWIZ")
FORMATS.register("coco-captions", "drum.data.importers.formats:COCO_CAPTIONS")
FORMATS.register("image-folder", "drum.data.importers.formats:IMAGE_FOLDER")
FORMATS.register("hateful-memes", "drum.data.importers.formats:HATEFUL_MEMES")
FORMATS.register("hf", "drum.data.importers.formats:HF")


def import_dataset(name: str, options: Any, out: str | os.PathLike[str]) -> ImportReport:
    """Import with format ``name`` and its options dataclass into ``out``.

    Example::

        from drum.data.importers import import_dataset
        from drum.data.importers.classification import FolderSource, ImageFolderOptions

        report = import_dataset(
            "image-folder", ImageFolderOptions(sources=(FolderSource("pool", Path("train")),)),
            "data/folders",
        )
        report.written  # {"pool": 1200}
    """
    spec = FORMATS.get(name)
    if not isinstance(options, spec.options):
        raise TypeError(
            f"format {name!r} takes {spec.options.__name__}, got {type(options).__name__}"
        )
    return spec.run(options, Path(out))


__all__ = ["FORMATS", "REPORT_NAME", "ImportFormat", "ImportReport", "import_dataset"]

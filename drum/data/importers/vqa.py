"""VQA importers: VQAv2 and OK-VQA (the same official layout), and VizWiz.

VQAv2 / OK-VQA, per split, three inputs as the official releases ship them:

* questions: ``{"data_subtype": "train2014", "questions": [{"image_id", "question",
  "question_id"}, ...]}``
* annotations: ``{"annotations": [{"question_id", "image_id", "answers": [{"answer",
  "answer_confidence", "answer_id"}, ...], "multiple_choice_answer", "question_type",
  "answer_type"}, ...]}``
* the COCO image folder: ``COCO_<data_subtype>_<image_id:012d>.jpg``.

Each question with its annotation becomes one ``Example(task="vqa")``: ``id`` the
``question_id``, ``text`` the question, ``answers`` all 10 human answers (what
``vqa_accuracy`` scores against) with one copy of ``multiple_choice_answer`` moved first, so that
a demonstration shows the consensus answer (``most_common_first``; the multiset, and with it the
score, is unchanged). ``meta`` keeps the ids, ``question_type``, ``answer_type`` and
``multiple_choice_answer``.

VizWiz, per split: ``[{"image", "question", "answers": [{"answer", "answer_confidence"}, ...],
"answerable", "answer_type"}, ...]`` and its image folder; ``id`` is the image's file stem
(VizWiz asks one question per image) and the most frequent answer goes first.

VQAv2 / OK-VQA questions without annotations (the test splits, whose answers are not public;
no annotations file at all: ``annotations=None``, ``--annotations none``) are written as
queries without references, ``"answers": []``, counted in the report as ``unanswered``: they
can be retrieved for, not scored nor used as demonstrations (``Example.has_answers``). VizWiz
records without answers are still skipped and reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    most_common_first,
    read_json,
    require,
    require_dir,
    source_image,
    write_import,
)

UNANSWERED = "no answers (an unanswered question, e.g. of a test split; vizwiz skips them)"
EMPTY_ANSWER = "an empty answer string (DRUM answers must be non-empty)"


@dataclass(frozen=True)
class VQASource:
    """One split of VQAv2 / OK-VQA: its questions and annotations files and image folder.

    ``annotations`` ``None``: a split without public answers (test-dev, test), every question
    a query without references. ``coco_split`` names the images
    (``COCO_<coco_split>_<image_id:012d>.jpg``); ``None`` reads it from the questions file's
    ``data_subtype``.
    """

    split: str
    questions: Path
    annotations: Path | None
    images: Path
    coco_split: str | None = None

    def __post_init__(self) -> None:
        check_split_name(self.split)


@dataclass(frozen=True)
class VQAOptions:
    """``drum data import vqav2`` / ``okvqa``: one source per output split."""

    sources: tuple[VQASource, ...]
    copy_images: bool = False

    def __post_init__(self) -> None:
        if not self.sources:
            raise ValueError("at least one split (questions, annotations, images) is needed")
        splits = [source.split for source in self.sources]
        if len(set(splits)) != len(splits):
            raise ValueError(f"each output split may be given once, got {splits}")


@dataclass(frozen=True)
class VizWizSource:
    """One split of VizWiz: its annotations file and image folder."""

    split: str
    annotations: Path
    images: Path

    def __post_init__(self) -> None:
        check_split_name(self.split)


@dataclass(frozen=True)
class VizWizOptions:
    """``drum data import vizwiz``: one source per output split."""

    sources: tuple[VizWizSource, ...]
    copy_images: bool = False

    def __post_init__(self) -> None:
        if not self.sources:
            raise ValueError("at least one split (annotations, images) is needed")
        splits = [source.split for source in self.sources]
        if len(set(splits)) != len(splits):
            raise ValueError(f"each output split may be given once, got {splits}")


def _image_example(
    log: SplitLog,
    images: ImageChecker,
    where: Where,
    image: Path,
    copy_name: str,
    **fields: Any,
) -> None:
    """Add ``Example(images=(image,), **fields)`` to ``log`` unless its image is unusable."""
    problem = images.problem(image)
    if problem is not None:
        log.skip(problem, f"{where} ({image})")
        return
    log.add(Example(images=(images.place(image, copy_name),), **fields), where)


def _coco_split(source: VQASource, questions: dict[str, Any]) -> str:
    if source.coco_split is not None:
        return source.coco_split
    subtype = questions.get("data_subtype")
    if not isinstance(subtype, str) or not subtype:
        raise Where(source.questions).error(
            "no 'data_subtype' (e.g. \"train2014\") to name the images COCO_<data_subtype>_"
            "<image_id:012d>.jpg; give it with --coco-split"
        )
    if any(c in subtype for c in "/\\") or subtype.startswith("."):
        # It names every image and copy: a path in it would lead them out of their folders.
        raise Where(source.questions).error(
            f"'data_subtype' must be a plain name such as \"val2014\", got {subtype!r}"
        )
    return subtype


def _collect_vqa_split(
    source: VQASource, log: SplitLog, images: ImageChecker, format_name: str
) -> None:
    questions_file = read_json(
        source.questions, dict, 'a VQA questions file: an object with a "questions" array'
    )
    require_dir(source.images, "the COCO image folder (COCO_<split>_<image_id:012d>.jpg)")
    questions = require(questions_file, "questions", list, Where(source.questions))
    coco_split = _coco_split(source, questions_file)
    annotations: list[Any] = []
    if source.annotations is not None:
        annotations_file = read_json(
            source.annotations,
            dict,
            'a VQA annotations file: an object with an "annotations" array',
        )
        annotations = require(annotations_file, "annotations", list, Where(source.annotations))

    by_question: dict[int, tuple[Where, dict[str, Any]]] = {}
    for index, question in enumerate(questions):
        where = Where(source.questions, record=f"questions[{index}]")
        if not isinstance(question, dict):
            raise where.error(f"expected an object, got {question!r}")
        question_id = require(question, "question_id", int, where)
        require(question, "image_id", int, where)
        require(question, "question", str, where)
        if question_id in by_question:
            log.skip("duplicate question_id in the questions file (the first is kept)", where)
            continue
        by_question[question_id] = (where, question)

    annotation_of: dict[int, tuple[Where, dict[str, Any]]] = {}
    for index, annotation in enumerate(annotations):
        assert source.annotations is not None
        where = Where(source.annotations, record=f"annotations[{index}]")
        if not isinstance(annotation, dict):
            raise where.error(f"expected an object, got {annotation!r}")
        question_id = require(annotation, "question_id", int, where)
        answer_strings(require(annotation, "answers", list, where), "answer", where)
        for name in ("multiple_choice_answer", "question_type", "answer_type"):
            if name in annotation:
                require(annotation, name, str, where)
        if question_id not in by_question:
            log.skip("annotation for a question_id not in the questions file", where)
        elif question_id in annotation_of:
            log.skip("second annotation for the same question_id (the first is kept)", where)
        else:
            annotation_of[question_id] = (where, annotation)

    for question_id, (where, question) in by_question.items():
        image_id = question["image_id"]
        # No annotation (a test split): a query without references, "answers": [].
        annotation_where, annotation = annotation_of.get(question_id, (where, {"answers": []}))
        if "image_id" in annotation and annotation["image_id"] != image_id:
            log.skip("the annotation's image_id differs from its question's", annotation_where)
            continue
        answers = answer_strings(annotation["answers"], "answer", annotation_where)
        if not all(answer.strip() for answer in answers):
            log.skip(EMPTY_ANSWER, annotation_where)
            continue
        consensus = annotation.get("multiple_choice_answer")
        name = f"COCO_{coco_split}_{image_id:012d}.jpg"
        meta = {
            "source": format_name,
            "question_id": question_id,
            "image_id": image_id,
            **{
                key: annotation[key]
                for key in ("question_type", "answer_type", "multiple_choice_answer")
                if key in annotation
            },
        }
        _image_example(
            log,
            images,
            where,
            source.images / name,
            f"{coco_split}/{name}",
            id=str(question_id),
            text=question["question"],
            answers=tuple(most_common_first(answers, consensus)),
            task="vqa",
            meta=meta,
        )


def import_vqa(options: VQAOptions, out: Path, format_name: str = "vqav2") -> ImportReport:
    """Import VQAv2 (``format_name="vqav2"``) or OK-VQA (``"okvqa"``) into ``out``.

    Example::

        import_vqa(VQAOptions(sources=(VQASource("queries", Path("v2_OpenEnded_mscoco_val2014_
            questions.json"), Path("v2_mscoco_val2014_annotations.json"), Path("val2014")),)),
            Path("data/vqav2"))
    """

    def collect(staging: Path) -> ImportLog:
        log = ImportLog()
        images = ImageChecker(staging / "images" if options.copy_images else None)
        for source in options.sources:
            _collect_vqa_split(source, log.split(source.split), images, format_name)
        return log

    inputs = [
        p for s in options.sources for p in (s.questions, s.annotations, s.images) if p is not None
    ]
    return write_import(out, format_name, options, inputs, collect)


def import_okvqa(options: VQAOptions, out: Path) -> ImportReport:
    """OK-VQA: the VQAv2 layout (``import_vqa``), recorded as ``okvqa``."""
    return import_vqa(options, out, format_name="okvqa")


def import_vqav2(options: VQAOptions, out: Path) -> ImportReport:
    """VQAv2 (``import_vqa``)."""
    return import_vqa(options, out, format_name="vqav2")


def _collect_vizwiz_split(source: VizWizSource, log: SplitLog, images: ImageChecker) -> None:
    records = read_json(
        source.annotations,
        list,
        'a VizWiz annotations file: an array of {"image", "question", "answers", ...} objects',
    )
    require_dir(source.images, "the VizWiz image folder")
    for index, record in enumerate(records):
        where = Where(source.annotations, record=f"[{index}]")
        if not isinstance(record, dict):
            raise where.error(f"expected an object, got {record!r}")
        image = require(record, "image", str, where)
        question = require(record, "question", str, where)
        if "answers" not in record:
            log.skip(UNANSWERED, where)
            continue
        answers = answer_strings(record["answers"], "answer", where)
        if not answers:
            log.skip(UNANSWERED, where)
            continue
        if not all(answer.strip() for answer in answers):
            log.skip(EMPTY_ANSWER, where)
            continue
        meta = {"source": "vizwiz", "image": image}
        for name in ("answerable", "answer_type"):
            if name in record:
                meta[name] = record[name]
        path = source_image(source.images, image)
        if path is None:
            log.skip(OUTSIDE_IMAGE_ROOT, f"{where} ({image})")
            continue
        _image_example(
            log,
            images,
            where,
            path,
            f"{source.images.name}/{image}",
            id=Path(image).stem,
            text=question,
            answers=tuple(most_common_first(answers)),
            task="vqa",
            meta=meta,
        )


def import_vizwiz(options: VizWizOptions, out: Path) -> ImportReport:
    """Import VizWiz VQA into ``out`` (one annotations file + image folder per split)."""

    def collect(staging: Path) -> ImportLog:
        log = ImportLog()
        images = ImageChecker(staging / "images" if options.copy_images else None)
        for source in options.sources:
            _collect_vizwiz_split(source, log.split(source.split), images)
        return log

    inputs = [p for s in options.sources for p in (s.annotations, s.images)]
    return write_import(out, "vizwiz", options, inputs, collect)

"""Tiny fixtures in each benchmark's official layout, with real photos (scikit-image's bundled
samples, shrunk to 32x24) as the images."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

PHOTOS = ("astronaut", "camera", "coffee", "chelsea", "rocket", "coins")
SIZE = (32, 24)


@cache
def _photo(name: str) -> Image.Image:
    import skimage.data

    pixels = np.asarray(getattr(skimage.data, name)())
    if pixels.ndim == 2:
        pixels = np.stack([pixels] * 3, axis=-1)
    return Image.fromarray(pixels[..., :3].astype(np.uint8)).resize(SIZE)


def write_photo(path: Path, index: int = 0, image_format: str | None = None) -> Path:
    """Save photo ``index`` (mod the list) at ``path`` (JPEG or PNG by suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _photo(PHOTOS[index % len(PHOTOS)]).save(path, format=image_format)
    return path


def write_json(path: Path, value: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


def coco_name(subtype: str, image_id: int) -> str:
    return f"COCO_{subtype}_{image_id:012d}.jpg"


def vqa_answers(*answers: str) -> list[dict[str, Any]]:
    """The official answers array: 10 objects with answer, confidence and id."""
    assert len(answers) == 10
    return [
        {"answer": a, "answer_confidence": "yes", "answer_id": i + 1} for i, a in enumerate(answers)
    ]


def write_vqa(root: Path, subtype: str = "val2014") -> dict[str, Path]:
    """A VQAv2 split: 3 images, 4 answered questions, and the official three inputs.

    Question 11 (image 1) answers "2" x 7 / "two" x 3 (consensus "2"); 12 (image 1) ten "white";
    21 (image 2) ten "red, white, and blue?"; 31 (image 3) "yes" x 6 / "no" x 4.
    """
    images = root / subtype
    for index, image_id in enumerate((1, 2, 3)):
        write_photo(images / coco_name(subtype, image_id), index)
    questions = [
        {"image_id": 1, "question": "How many dogs?", "question_id": 11},
        {"image_id": 1, "question": "What color is the wall?", "question_id": 12},
        {"image_id": 2, "question": "What colors is the flag?", "question_id": 21},
        {"image_id": 3, "question": "Is it sunny?", "question_id": 31},
    ]
    annotations = [
        {
            "question_id": 11, "image_id": 1, "question_type": "how many", "answer_type": "number",
            "multiple_choice_answer": "2", "answers": vqa_answers(*["two"] * 3, *["2"] * 7),
        },
        {
            "question_id": 12, "image_id": 1, "question_type": "what color is the",
            "answer_type": "other", "multiple_choice_answer": "white",
            "answers": vqa_answers(*["white"] * 10),
        },
        {
            "question_id": 21, "image_id": 2, "question_type": "what color is the",
            "answer_type": "other", "multiple_choice_answer": "red, white, and blue?",
            "answers": vqa_answers(*["red, white, and blue?"] * 10),
        },
        {
            "question_id": 31, "image_id": 3, "question_type": "is it", "answer_type": "yes/no",
            "multiple_choice_answer": "yes", "answers": vqa_answers(*["no"] * 4, *["yes"] * 6),
        },
    ]  # fmt: skip
    return {
        "questions": write_json(
            root / f"v2_OpenEnded_mscoco_{subtype}_questions.json",
            {"data_subtype": subtype, "task_type": "Open-Ended", "questions": questions},
        ),
        "annotations": write_json(
            root / f"v2_mscoco_{subtype}_annotations.json",
            {"data_subtype": subtype, "annotations": annotations},
        ),
        "images": images,
    }


def write_vizwiz(root: Path, split: str = "val") -> dict[str, Path]:
    """A VizWiz split: 2 answered questions (one image each)."""
    images = root / split
    records = []
    for index in range(2):
        name = f"VizWiz_{split}_{index:08d}.jpg"
        write_photo(images / name, index)
        answers = ["soup"] * 6 + ["unanswerable"] * 4 if index == 0 else ["blue"] * 10
        records.append(
            {
                "image": name,
                "question": f"What is this {index}?",
                "answers": [{"answer": a, "answer_confidence": "yes"} for a in answers],
                "answerable": 1,
                "answer_type": "other",
            }
        )
    return {
        "annotations": write_json(root / "annotations" / f"{split}.json", records),
        "images": images,
    }


def write_coco_captions(root: Path, subtype: str = "val2014") -> dict[str, Path]:
    """Official captions: 2 images with 2 captions each."""
    images = root / subtype
    image_records = []
    for index, image_id in enumerate((5, 7)):
        name = coco_name(subtype, image_id)
        write_photo(images / name, index)
        image_records.append({"id": image_id, "file_name": name, "width": 32, "height": 24})
    annotations = [
        {"id": 1, "image_id": 5, "caption": "A man in a space suit."},
        {"id": 2, "image_id": 7, "caption": "A black and white photo of a man."},
        {"id": 3, "image_id": 5, "caption": "An astronaut posing with a flag."},
        {"id": 4, "image_id": 7, "caption": "A cameraman outdoors."},
    ]
    path = write_json(
        root / "annotations" / f"captions_{subtype}.json",
        {"images": image_records, "annotations": annotations},
    )
    return {"captions": path, "images": images}


def write_karpathy(root: Path) -> dict[str, Path]:
    """A Karpathy dataset_coco.json: one image per split (train, restval, val, test)."""
    records = []
    for index, split in enumerate(("train", "restval", "val", "test")):
        folder = "train2014" if split == "train" else "val2014"
        name = coco_name(folder, 100 + index)
        write_photo(root / folder / name, index)
        records.append(
            {
                "filepath": folder,
                "filename": name,
                "split": split,
                "imgid": index,
                "cocoid": 100 + index,
                "sentids": [2 * index, 2 * index + 1],
                "sentences": [
                    {"raw": f"A photo number {index}.", "tokens": ["a"], "imgid": index},
                    {"raw": f"Picture {index} of something.", "tokens": ["p"], "imgid": index},
                ],
            }
        )
    return {
        "file": write_json(root / "dataset_coco.json", {"images": records, "dataset": "coco"}),
        "images": root,
    }


def write_image_folder(root: Path) -> Path:
    """``root/<class>/<image>``: cat x2 (one in a sub-folder), dog x1, and a notes.txt."""
    write_photo(root / "cat" / "a.jpg", 0)
    write_photo(root / "cat" / "more" / "b.png", 1)
    write_photo(root / "dog" / "c.JPG", 2, image_format="JPEG")
    (root / "dog" / "notes.txt").write_text("not an image")
    return root


def write_memes(
    root: Path, name: str = "train.jsonl", labels: tuple[int | None, ...] = (0, 1)
) -> Path:
    """Hateful Memes: ``root/img/<id>.png`` and ``root/<name>``, one line per label."""
    lines = []
    for index, label in enumerate(labels):
        meme_id = 42950 + index
        write_photo(root / "img" / f"{meme_id:05d}.png", index)
        record: dict[str, Any] = {
            "id": meme_id,
            "img": f"img/{meme_id:05d}.png",
            "text": f"meme {index}",
        }
        if label is not None:
            record["label"] = label
        lines.append(json.dumps(record))
    path = root / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_answerless(source: Path, out: Path, keep: int = 1) -> Path:
    """``source``'s first 3 examples as ``out``, all but the first ``keep`` without answers
    (queries without references, as a test split imports)."""
    from dataclasses import replace

    from drum.data.jsonl import read_examples, write_examples

    examples = read_examples(source)[:3]
    write_examples(out, [e if i < keep else replace(e, answers=()) for i, e in enumerate(examples)])
    return out

"""Hugging Face datasets on disk: save_to_disk folders and parquet files, offline."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from drum.data.importers import import_dataset
from drum.data.importers.base import UNASSIGNED
from drum.data.importers.hf import HFOptions
from drum.data.jsonl import DataError, validate_dataset
from tests.data.importers.fixtures import _photo, write_photo

datasets = pytest.importorskip("datasets")


def _png(index: int) -> bytes:
    buffer = io.BytesIO()
    _photo(("astronaut", "camera", "coffee")[index % 3]).save(buffer, format="PNG")
    return buffer.getvalue()


def _vqa_dict() -> datasets.DatasetDict:
    features = datasets.Features(
        {
            "question_id": datasets.Value("int64"),
            "image": datasets.Image(),
            "question": datasets.Value("string"),
            "answers": datasets.Sequence({"answer": datasets.Value("string")}),
        }
    )

    def rows(ids: list[int]) -> dict[str, list[object]]:
        return {
            "question_id": ids,
            "image": [{"bytes": _png(i), "path": None} for i in ids],
            "question": [f"question {i}?" for i in ids],
            "answers": [{"answer": ["no"] * 3 + ["yes"] * 7} for _ in ids],
        }

    return datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict(rows([1, 2]), features=features),
            "validation": datasets.Dataset.from_dict(rows([3]), features=features),
            "test": datasets.Dataset.from_dict(rows([4]), features=features),
        }
    )


def test_save_to_disk_with_image_bytes(tmp_path: Path) -> None:
    source = tmp_path / "vqa_hf"
    _vqa_dict().save_to_disk(str(source))
    options = HFOptions(source=source, task="vqa", text_column="question", id_column="question_id")
    report = import_dataset("hf", options, tmp_path / "out")
    assert report.written == {"pool": 2, "queries": 1}
    assert report.skipped[UNASSIGNED] == {"source split 'test' is mapped to no output split": 1}
    pool = validate_dataset(tmp_path / "out" / "pool.jsonl")
    assert [e.id for e in pool] == ["1", "2"]
    assert pool[0].text == "question 1?" and pool[0].answer == "yes" and len(pool[0].answers) == 10
    # Bytes are written out under the output directory, one file per row.
    written = tmp_path / "out" / "images" / "train" / "0000000.png"
    assert pool[0].image == written.resolve()
    assert written.read_bytes() == _png(1)


def test_parquet_files_with_class_labels_and_paths(tmp_path: Path) -> None:
    images = tmp_path / "raw" / "pics"
    for index in range(3):
        write_photo(images / f"{index}.jpg", index)
    features = datasets.Features(
        {"file": datasets.Value("string"), "label": datasets.ClassLabel(names=["cat", "dog"])}
    )
    data = datasets.Dataset.from_dict(
        {"file": ["pics/0.jpg", "pics/1.jpg", "pics/2.jpg"], "label": [0, 1, -1]},
        features=features,
    )
    data.to_parquet(str(tmp_path / "raw" / "data" / "train-00000-of-00001.parquet"))
    options = HFOptions(
        source=tmp_path / "raw" / "data",
        task="classification",
        image_column="file",
        answers_column="label",
        image_root=tmp_path / "raw",
        split_map={"train": "pool"},
    )
    report = import_dataset("hf", options, tmp_path / "out")
    assert report.written == {"pool": 2}
    assert report.skipped["pool"] == {"no answers (null, empty, or ClassLabel -1)": 1}
    pool = validate_dataset(tmp_path / "out" / "pool.jsonl")
    assert [(e.id, e.answers) for e in pool] == [("train-0", ("cat",)), ("train-1", ("dog",))]
    assert pool[0].text == "what is this?"
    assert pool[1].image == (images / "1.jpg").resolve()
    assert not (tmp_path / "out" / "images").exists()  # paths are not copied unless asked


def test_caption_lists_and_errors(tmp_path: Path) -> None:
    data = datasets.Dataset.from_dict(
        {
            "image": [{"bytes": _png(0), "path": None}, {"bytes": b"garbage", "path": None}],
            "sentences": [["a man.", "an astronaut."], ["x"]],
        },
        features=datasets.Features(
            {"image": datasets.Image(), "sentences": datasets.Sequence(datasets.Value("string"))}
        ),
    )
    source = tmp_path / "caps"
    data.save_to_disk(str(source))
    options = HFOptions(
        source=source, task="caption", answers_column="sentences", split_map={"train": "pool"}
    )
    report = import_dataset("hf", options, tmp_path / "out")
    assert report.written == {"pool": 1}
    assert report.skipped["pool"] == {"image bytes that do not decode as an image": 1}
    (example,) = validate_dataset(tmp_path / "out" / "pool.jsonl")
    assert example.answers == ("a man.", "an astronaut.") and example.text == "describe the image."
    with pytest.raises(
        DataError, match=r"no column\(s\) \['captions'\]; columns: \['image', 'sentences'\]"
    ):
        import_dataset("hf", HFOptions(source=source, task="caption", answers_column="captions",
                                       split_map={"train": "pool"}), tmp_path / "out")  # fmt: skip
    with pytest.raises(DataError, match=r"no split\(s\) \['validation'\] to map"):
        import_dataset("hf", HFOptions(source=source, task="caption", answers_column="sentences"),
                       tmp_path / "out")  # fmt: skip
    stray = tmp_path / "notes.json"
    stray.write_text("{}")
    for wrong in (stray, tmp_path / "out"):  # a JSON file; a folder without data files
        with pytest.raises(DataError, match="expected a save_to_disk folder"):
            import_dataset("hf", HFOptions(source=wrong, task="caption"), tmp_path / "out3")
    with pytest.raises(ValueError, match="needs its question column"):
        HFOptions(source=source, task="vqa")

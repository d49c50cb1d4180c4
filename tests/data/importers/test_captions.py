"""COCO captions importer: official caption files and Karpathy split files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drum.data.bundled import PHOTOS_PROMPT
from drum.data.importers import import_dataset
from drum.data.importers.base import UNASSIGNED
from drum.data.importers.captions import (
    EMPTY_CAPTION,
    NO_CAPTION,
    CaptionOptions,
    CocoCaptionSource,
    KarpathySource,
)
from drum.data.jsonl import DataError, validate_dataset
from tests.data.importers.fixtures import write_coco_captions, write_json, write_karpathy


def _official(files: dict[str, Path], split: str = "queries") -> CaptionOptions:
    return CaptionOptions(sources=(CocoCaptionSource(split, files["captions"], files["images"]),))


def test_official_captions_one_example_per_image(tmp_path: Path) -> None:
    files = write_coco_captions(tmp_path / "raw")
    report = import_dataset("coco-captions", _official(files), tmp_path / "out")
    assert report.written == {"queries": 2}
    examples = {e.id: e for e in validate_dataset(tmp_path / "out" / "queries.jsonl")}
    assert examples["5"].answers == ("A man in a space suit.", "An astronaut posing with a flag.")
    assert examples["5"].task == "caption" and examples["5"].text == PHOTOS_PROMPT
    assert examples["7"].meta["file_name"] == "COCO_val2014_000000000007.jpg"


def test_official_skips_and_errors(tmp_path: Path) -> None:
    files = write_coco_captions(tmp_path / "raw")
    data = json.loads(files["captions"].read_text())
    data["images"].append({"id": 9, "file_name": "COCO_val2014_000000000009.jpg"})  # no caption
    data["annotations"] += [
        {"id": 8, "image_id": 77, "caption": "for nobody"},
        {"id": 9, "image_id": 5, "caption": "   "},
    ]
    write_json(files["captions"], data)
    report = import_dataset("coco-captions", _official(files), tmp_path / "out")
    assert report.skipped["queries"] == {
        "caption for an image_id not in 'images'": 1,
        EMPTY_CAPTION: 1,
        NO_CAPTION: 1,
    }
    assert len(validate_dataset(tmp_path / "out" / "queries.jsonl")[0].answers) == 2
    data["annotations"][0].pop("caption")
    write_json(files["captions"], data)
    with pytest.raises(DataError, match=r"annotations\[0\]: missing field 'caption' \(a string\)"):
        import_dataset("coco-captions", _official(files), tmp_path / "out")
    write_json(files["captions"], [data])
    with pytest.raises(DataError, match="expected a COCO captions file.*got a JSON array"):
        import_dataset("coco-captions", _official(files), tmp_path / "out")


def test_karpathy_default_map_and_custom_map(tmp_path: Path) -> None:
    files = write_karpathy(tmp_path / "raw")
    options = CaptionOptions(karpathy=KarpathySource(files["file"], files["images"]))
    report = import_dataset("coco-captions", options, tmp_path / "out")
    assert report.written == {"pool": 2, "queries": 1}
    assert report.skipped[UNASSIGNED] == {"Karpathy split 'val' is mapped to no output split": 1}
    pool = validate_dataset(tmp_path / "out" / "pool.jsonl")
    assert [e.id for e in pool] == ["100", "101"]
    assert [e.meta["split"] for e in pool] == ["train", "restval"]
    assert pool[0].answers == ("A photo number 0.", "Picture 0 of something.")
    assert pool[0].image == (files["images"] / "train2014" / pool[0].meta["filename"]).resolve()
    custom = KarpathySource(files["file"], files["images"], {"val": "val", "test": "test"})
    report = import_dataset("coco-captions", CaptionOptions(karpathy=custom), tmp_path / "out2")
    assert report.written == {"val": 1, "test": 1}
    with pytest.raises(ValueError, match=r"Karpathy split\(s\) \['dev'\] unknown"):
        KarpathySource(files["file"], files["images"], {"dev": "pool"})
    with pytest.raises(ValueError, match="not both or neither"):
        CaptionOptions()


def test_karpathy_flickr_layout_without_filepath(tmp_path: Path) -> None:
    files = write_karpathy(tmp_path / "raw")
    data = json.loads(files["file"].read_text())
    for record in data["images"]:  # Flickr30k: no filepath, no cocoid, images in one folder
        del record["cocoid"]
        (files["images"] / record["filepath"] / record["filename"]).rename(
            files["images"] / record.pop("filepath") / ".." / record["filename"]
        )
    write_json(files["file"], data)
    options = CaptionOptions(karpathy=KarpathySource(files["file"], files["images"]))
    report = import_dataset("coco-captions", options, tmp_path / "out")
    assert report.written == {"pool": 2, "queries": 1}
    assert [e.id for e in validate_dataset(tmp_path / "out" / "pool.jsonl")] == ["0", "1"]
    data["images"][1]["split"] = "dev"
    write_json(files["file"], data)
    with pytest.raises(DataError, match=r"images\[1\]: field 'split' must be one of"):
        import_dataset("coco-captions", options, tmp_path / "out")

"""An import writes only inside ``--out``: a source image path that leaves its image folder
(``../``, or absolute) is a counted skip, in every importer that joins a path from the
annotations to an image folder, with or without ``--copy-images``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from drum.data.importers import import_dataset
from drum.data.importers.base import OUTSIDE_IMAGE_ROOT, ImageChecker
from drum.data.importers.captions import CaptionOptions, CocoCaptionSource, KarpathySource
from drum.data.importers.classification import HatefulMemesOptions, MemeSource
from drum.data.importers.hf import HFOptions
from drum.data.importers.vqa import VizWizOptions, VizWizSource, VQAOptions, VQASource
from drum.data.jsonl import DataError, validate_dataset
from tests.data.importers.fixtures import (
    write_coco_captions,
    write_json,
    write_karpathy,
    write_memes,
    write_photo,
    write_vizwiz,
    write_vqa,
)

# Three levels up from an image folder three levels below tmp_path lands on tmp_path/s1; from
# the copy folder (<out>/images/<prefix>/...) it lands outside <out>: what the import wrote
# there before this fix.
ESCAPE = "../../../escape.jpg"
ABSOLUTE = "/etc/passwd.jpg"


def _files_outside(tmp_path: Path, out: Path) -> set[Path]:
    return {p for p in tmp_path.rglob("*") if p.is_file() and out not in p.parents}


def _coco(root: Path) -> tuple[str, Any]:
    files = write_coco_captions(root)
    data = json.loads(files["captions"].read_text())
    for image_id, name in ((9, ESCAPE), (10, ABSOLUTE)):
        data["images"].append({"id": image_id, "file_name": name})
        data["annotations"].append({"id": image_id, "image_id": image_id, "caption": "x"})
    write_json(files["captions"], data)
    source = CocoCaptionSource("queries", files["captions"], files["images"])
    return "coco-captions", lambda copy: CaptionOptions(sources=(source,), copy_images=copy)


def _karpathy(root: Path) -> tuple[str, Any]:
    files = write_karpathy(root)
    data = json.loads(files["file"].read_text())
    for index, (path, name) in enumerate((("../..", "../escape.jpg"), ("", ABSOLUTE))):
        record = dict(data["images"][0], filepath=path, filename=name, cocoid=900 + index)
        data["images"].append(record)
    write_json(files["file"], data)
    source = KarpathySource(files["file"], files["images"], {"train": "pool", "test": "queries"})
    return "coco-captions", lambda copy: CaptionOptions(karpathy=source, copy_images=copy)


def _vizwiz(root: Path) -> tuple[str, Any]:
    files = write_vizwiz(root)
    records = json.loads(files["annotations"].read_text())
    for name in (ESCAPE, ABSOLUTE):
        records.append(dict(records[1], image=name))
    write_json(files["annotations"], records)
    source = VizWizSource("queries", files["annotations"], files["images"])
    return "vizwiz", lambda copy: VizWizOptions(sources=(source,), copy_images=copy)


def _memes(root: Path) -> tuple[str, Any]:
    path = write_memes(root / "memes")
    lines = path.read_text().splitlines()
    for index, name in enumerate((ESCAPE.replace("../", "../../", 1), ABSOLUTE)):
        record = dict(json.loads(lines[0]), id=7 + index, img=name)
        lines.append(json.dumps(record))
    path.write_text("\n".join(lines) + "\n")
    source = MemeSource("pool", path)
    return "hateful-memes", lambda copy: HatefulMemesOptions(sources=(source,), copy_images=copy)


def _hf(root: Path) -> tuple[str, Any]:
    datasets = pytest.importorskip("datasets")
    images = root / "pics"
    write_photo(images / "0.jpg", 0)
    data = datasets.Dataset.from_dict(
        {"file": ["0.jpg", ESCAPE, ABSOLUTE], "caption": ["a", "b", "c"]}
    )
    data.to_parquet(str(root / "data" / "train-00000-of-00001.parquet"))

    def options(copy: bool) -> HFOptions:
        return HFOptions(
            source=root / "data",
            task="caption",
            image_column="file",
            answers_column="caption",
            image_root=images,
            split_map={"train": "pool"},
            copy_images=copy,
        )

    return "hf", options


FAMILIES: dict[str, Callable[[Path], tuple[str, Any]]] = {
    "coco-captions": _coco,
    "karpathy": _karpathy,
    "vizwiz": _vizwiz,
    "hateful-memes": _memes,
    "hf": _hf,
}


@pytest.mark.parametrize("copy", [True, False], ids=["copy-images", "no-copy"])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_an_image_path_leaving_its_folder_is_a_counted_skip_never_a_write_outside_out(
    tmp_path: Path, family: str, copy: bool
) -> None:
    # The image folder is three levels below tmp_path, so ESCAPE names tmp_path/s1/escape.jpg.
    root = tmp_path / "s1" / "s2" / "s3"
    write_photo(tmp_path / "s1" / "escape.jpg", 3)
    write_photo(tmp_path / "escape.jpg", 3)  # Karpathy's image root is `root` itself
    name, options = FAMILIES[family](root)
    out = tmp_path / "o1" / "o2" / "o3" / "out"
    before = _files_outside(tmp_path, out)
    report = import_dataset(name, options(copy), out)
    assert _files_outside(tmp_path, out) == before  # nothing written outside --out
    skipped = {reason: n for split in report.skipped.values() for reason, n in split.items()}
    assert skipped.get(OUTSIDE_IMAGE_ROOT) == 2, report.skipped
    saved = json.loads((out / "import_report.json").read_text())
    listed = [
        w for split in saved["skipped_samples"].values() for w in split.get(OUTSIDE_IMAGE_ROOT, [])
    ]
    assert len(listed) == 2
    for split in report.written:
        for example in validate_dataset(out / f"{split}.jsonl"):
            assert "escape" not in example.image.name and "passwd" not in example.image.name


def test_vqa_data_subtype_that_is_not_a_plain_name_is_an_error(tmp_path: Path) -> None:
    files = write_vqa(tmp_path / "raw")
    questions = json.loads(files["questions"].read_text())
    questions["data_subtype"] = "val2014/../../.."
    write_json(files["questions"], questions)
    source = VQASource("queries", files["questions"], files["annotations"], files["images"])
    with pytest.raises(DataError, match="data_subtype.*plain name"):
        import_dataset("vqav2", VQAOptions(sources=(source,), copy_images=True), tmp_path / "out")


def test_the_copy_step_refuses_a_name_that_leaves_the_copy_folder(tmp_path: Path) -> None:
    image = write_photo(tmp_path / "a.jpg")
    checker = ImageChecker(tmp_path / "staging" / "images")
    with pytest.raises(DataError, match="outside"):
        checker.place(image, "../../a.jpg")
    assert not (tmp_path / "staging").exists()

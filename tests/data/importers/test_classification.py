"""Image-folder and Hateful Memes importers."""

from __future__ import annotations

from pathlib import Path

import pytest

from drum.data.importers import import_dataset
from drum.data.importers.classification import (
    CLASSIFICATION_PROMPT,
    FolderSource,
    HatefulMemesOptions,
    ImageFolderOptions,
    MemeSource,
)
from drum.data.jsonl import DataError, validate_dataset
from tests.data.importers.fixtures import write_image_folder, write_memes


def test_image_folder_classes_are_the_sub_folders(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "train")
    (root / "bird").mkdir()  # a class with no image
    (root / "cat" / "broken.jpg").write_bytes(b"not a jpeg")
    options = ImageFolderOptions(sources=(FolderSource("pool", root),))
    report = import_dataset("image-folder", options, tmp_path / "out")
    assert report.written == {"pool": 3}
    assert report.skipped["pool"] == {
        "class folder without a usable image": 1,
        "image file unreadable or corrupt": 1,
        "not an image file extension (.jpg, .jpeg, .png, .ppm, .bmp, .pgm, .tif, .tiff, .webp)": 1,
    }
    examples = {e.id: e for e in validate_dataset(tmp_path / "out" / "pool.jsonl")}
    assert set(examples) == {"cat/a.jpg", "cat/more/b.png", "dog/c.JPG"}
    assert examples["cat/more/b.png"].answers == ("cat",)
    assert examples["dog/c.JPG"].task == "classification"
    assert examples["dog/c.JPG"].text == CLASSIFICATION_PROMPT


def test_image_folder_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    options = ImageFolderOptions(sources=(FolderSource("pool", empty),))
    with pytest.raises(DataError, match="no class folder"):
        import_dataset("image-folder", options, tmp_path / "out")
    options = ImageFolderOptions(sources=(FolderSource("pool", tmp_path / "nowhere"),))
    with pytest.raises(DataError, match="not a directory"):
        import_dataset("image-folder", options, tmp_path / "out")


def test_hateful_memes_labels_and_text(tmp_path: Path) -> None:
    train = write_memes(tmp_path / "raw", labels=(0, 1, None))
    options = HatefulMemesOptions(sources=(MemeSource("pool", train),))
    report = import_dataset("hateful-memes", options, tmp_path / "out")
    assert report.written == {"pool": 2}
    assert report.skipped["pool"] == {"no label (an unlabelled meme, e.g. of a test split)": 1}
    examples = validate_dataset(tmp_path / "out" / "pool.jsonl")
    assert [(e.id, e.answers) for e in examples] == [
        ("42950", ("not hateful",)),
        ("42951", ("hateful",)),
    ]
    assert examples[0].text == 'is this meme hateful? its text: "meme 0"'
    assert examples[0].meta["meme_text"] == "meme 0"


def test_hateful_memes_malformed_lines(tmp_path: Path) -> None:
    train = write_memes(tmp_path / "raw")
    options = HatefulMemesOptions(sources=(MemeSource("pool", train),))
    lines = train.read_text().splitlines()
    train.write_text(lines[0] + "\n" + '{"id": 1, "img": "img/1.png", "label": 0,\n')
    with pytest.raises(DataError, match=r"train.jsonl:2: malformed JSON at column"):
        import_dataset("hateful-memes", options, tmp_path / "out")
    train.write_text(lines[0] + "\n" + '{"id": 1, "label": 0, "text": "t"}\n')
    with pytest.raises(DataError, match=r"train.jsonl:2: missing field 'img' \(a string\)"):
        import_dataset("hateful-memes", options, tmp_path / "out")
    train.write_text(lines[0] + "\n" + '{"id": 1, "img": "img/1.png", "label": 2, "text": ""}\n')
    with pytest.raises(DataError, match=r"train.jsonl:2: field 'label' must be 0 or 1, got 2"):
        import_dataset("hateful-memes", options, tmp_path / "out")
    train.write_text(lines[0] + "\n[1, 2]\n")
    with pytest.raises(DataError, match=r"train.jsonl:2: expected a Hateful Memes object"):
        import_dataset("hateful-memes", options, tmp_path / "out")
    train.write_text(
        lines[0] + "\n" + '{"id": 7, "img": "img/missing.png", "label": 1, "text": ""}\n'
    )
    report = import_dataset("hateful-memes", options, tmp_path / "out")
    assert report.skipped["pool"] == {"image file not found": 1}
    assert report.samples["pool"]["image file not found"][0].startswith(f"{train}:2 ")
    with pytest.raises(ValueError, match="must contain"):
        HatefulMemesOptions(sources=options.sources, meme_prompt="no placeholder")

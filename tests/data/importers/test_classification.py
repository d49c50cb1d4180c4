"""Image-folder and Hateful Memes importers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from drum.data.importers import import_dataset
from drum.data.importers.classification import (
    CLASS_LINK_INSIDE,
    CLASSIFICATION_PROMPT,
    DIRECTORY_LINK,
    NOT_UTF8_NAME,
    FolderSource,
    HatefulMemesOptions,
    ImageFolderOptions,
    MemeSource,
)
from drum.data.jsonl import DataError, validate_dataset
from tests.data.importers.fixtures import write_image_folder, write_memes, write_photo


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


def test_image_folder_follows_no_directory_link_and_reports_each(tmp_path: Path) -> None:
    root = tmp_path / "train"
    write_photo(root / "cat" / "a.jpg", 0)
    write_photo(root / "cat" / "more" / "b.png", 1)
    write_photo(root / "dog" / "c.jpg", 2)
    write_photo(root / "dog" / "d.jpg", 3)
    (root / "cat" / "loop").symlink_to(root)  # a loop through the root: every class again
    (root / "dog" / "self").symlink_to(root / "dog")  # a loop in place
    (root / "cat" / "more" / "dogs").symlink_to(root / "dog")  # another class's images
    (root / "kitty").symlink_to(root / "cat")  # a class folder that is another class
    (root / "up").symlink_to(tmp_path)  # a class folder above the root
    write_photo(tmp_path / "elsewhere" / "e.jpg", 4)
    (root / "bird").symlink_to(tmp_path / "elsewhere")  # linked in from outside: a class
    options = ImageFolderOptions(sources=(FolderSource("pool", root),))
    report = import_dataset("image-folder", options, tmp_path / "out")
    assert report.written == {"pool": 5}
    assert report.skipped["pool"] == {DIRECTORY_LINK: 3, CLASS_LINK_INSIDE: 2}
    examples = {e.id: e.answer for e in validate_dataset(tmp_path / "out" / "pool.jsonl")}
    assert examples == {
        "cat/a.jpg": "cat",
        "cat/more/b.png": "cat",
        "dog/c.jpg": "dog",
        "dog/d.jpg": "dog",
        "bird/e.jpg": "bird",
    }
    samples = report.samples["pool"]
    assert sorted(samples[DIRECTORY_LINK]) == sorted(
        str(p)
        for p in (root / "cat" / "loop", root / "dog" / "self", root / "cat" / "more" / "dogs")
    )
    assert sorted(samples[CLASS_LINK_INSIDE]) == [str(root / "kitty"), str(root / "up")]


def test_image_folder_skips_a_name_that_is_not_utf8_showing_it_escaped(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "train")
    raw = os.fsencode(root / "cat") + b"/caf\xe9.jpg"
    write_photo(Path(os.fsdecode(raw)), 3)
    raw_class = os.fsencode(root) + b"/b\xffrd/x.jpg"
    write_photo(Path(os.fsdecode(raw_class)), 4)
    options = ImageFolderOptions(sources=(FolderSource("pool", root),), copy_images=True)
    report = import_dataset("image-folder", options, tmp_path / "out")
    assert report.written == {"pool": 3}
    assert report.skipped["pool"][NOT_UTF8_NAME] == 2
    assert sorted(report.samples["pool"][NOT_UTF8_NAME]) == [
        f"{root}/b\\xffrd",
        f"{root}/cat/caf\\xe9.jpg",
    ]
    report.summary().encode("utf-8")  # printable: no lone surrogate left in a name
    saved = json.loads((tmp_path / "out" / "import_report.json").read_text())
    assert saved["skipped"]["pool"][NOT_UTF8_NAME] == 2

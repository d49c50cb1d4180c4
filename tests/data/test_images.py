"""One pixel limit (``MAX_IMAGE_PIXELS``) wherever an image is read: an image over it is "too
large", not "corrupt", including decompression-bomb sized PNGs that are a few KB on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from drum.data.images import MAX_IMAGE_PIXELS, ImageTooLarge, load_image, open_image
from drum.data.importers import import_dataset
from drum.data.importers.base import IMAGE_TOO_LARGE
from drum.data.importers.classification import FolderSource, ImageFolderOptions
from drum.data.jsonl import DataError, validate_dataset
from tests.data.big_png import write_big_png
from tests.data.importers.fixtures import write_photo

# 12000 x 12000: over DRUM's limit, below PIL's error limit (PIL only warns); 20000 x 20000:
# over PIL's error limit too (PIL raises DecompressionBombError, which read as "corrupt").
SIZES = [(12000, 12000), (20000, 20000)]


def test_the_limit_is_8192_squared_and_below_pils_own() -> None:
    assert MAX_IMAGE_PIXELS == 8192 * 8192
    assert Image.MAX_IMAGE_PIXELS is None or MAX_IMAGE_PIXELS < Image.MAX_IMAGE_PIXELS


def test_an_image_at_the_limit_opens_and_one_pixel_more_is_too_large(tmp_path: Path) -> None:
    with open_image(write_big_png(tmp_path / "at.png", 8192, 8192)) as image:
        assert image.size == (8192, 8192)
    with pytest.raises(ImageTooLarge, match="8193 x 8192 = 67117056 pixels"):
        load_image(write_big_png(tmp_path / "over.png", 8193, 8192))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_load_image_refuses_a_decompression_bomb_as_too_large(
    tmp_path: Path, size: tuple[int, int], recwarn: pytest.WarningsRecorder
) -> None:
    path = write_big_png(tmp_path / "big.png", *size)
    assert path.stat().st_size < 100_000  # small on disk
    with pytest.raises(ImageTooLarge, match="image too large"):
        load_image(path)
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_data_check_reports_a_decompression_bomb_as_too_large_not_corrupt(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    write_big_png(tmp_path / "images" / "big.png", *size)
    record = {"id": "q", "images": ["images/big.png"], "text": "?", "answers": ["a"], "task": "vqa"}
    (tmp_path / "data.jsonl").write_text(json.dumps(record) + "\n")
    with pytest.raises(DataError, match=r"data.jsonl:1: image too large: .*big.png") as error:
        validate_dataset(tmp_path / "data.jsonl")
    assert "corrupt" not in str(error.value)


def test_an_import_skips_a_too_large_image_counted_as_too_large(tmp_path: Path) -> None:
    root = tmp_path / "train"
    write_photo(root / "cat" / "a.jpg")
    for size in SIZES:
        write_big_png(root / "cat" / f"{size[0]}.png", *size)
    options = ImageFolderOptions(sources=(FolderSource("pool", root),))
    report = import_dataset("image-folder", options, tmp_path / "out")
    assert report.written == {"pool": 1}
    assert report.skipped["pool"] == {IMAGE_TOO_LARGE: 2}

"""``drum.demon.images``: every image a run will show is decoded before any model work."""

from __future__ import annotations

from pathlib import Path

import pytest

from drum.demon.format import DemonFormatError, read_demon_task
from drum.demon.images import decode_images


def test_each_file_is_decoded_once(demon_root: Path) -> None:
    # MMCoQA names 2.png twice: two files for three images.
    assert decode_images(read_demon_task(demon_root / "MMCoQA")) == 2


def test_a_truncated_image_names_the_file_the_task_and_the_sample(demon_root: Path) -> None:
    image = demon_root / "MultiModalQA" / "core" / "images" / "3.png"
    image.write_bytes(image.read_bytes()[:60])
    task = read_demon_task(demon_root / "MultiModalQA")  # it exists: the reader accepts it
    assert decode_images(task, task.samples[:1]) == 2  # only the samples asked for
    with pytest.raises(DemonFormatError) as error:
        decode_images(task)
    message = str(error.value)
    assert message.startswith(f"{image}: DEMON task 'MultiModalQA', sample_id 1: unreadable")
    assert "\n" not in message

"""DEMON images decoded in full before any model work, as ``drum data check`` decodes a JSONL
dataset's (``drum.data.jsonl.verify_image``: a full decode, not PIL's ``verify()``, under the
same limits).

``read_demon_task`` checks only that each image exists (a release holds tens of thousands);
``drum demon eval`` decodes the images of the samples it is about to generate, so that a
0-byte or truncated file is one error naming it before the model loads, not a traceback after
part of the predictions.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from drum.demon.format import DemonFormatError, DemonSample, DemonTask


def decode_images(task: DemonTask, samples: Iterable[DemonSample] | None = None) -> int:
    """Decode every image of ``samples`` (default: all of ``task``'s), each file once; return
    how many files were decoded.

    Example::

        decode_images(task, pending_samples(task, "runs/demon"))

    Raises:
        DemonFormatError: naming the image file, the task and the sample, for an image that is
            missing or does not decode.
    """
    from drum.data.jsonl import DataError, verify_image

    done: set[Path] = set()
    for sample in task.samples if samples is None else samples:
        for image in sample.images:
            if image in done:
                continue
            try:
                verify_image(image, image, None)
            except DataError as error:
                detail = str(error).removeprefix(f"{image}: ")
                raise DemonFormatError(
                    image, f"DEMON task {task.name!r}, sample_id {sample.sample_id!r}: {detail}"
                ) from None
            done.add(image)
    return len(done)

"""Batches cut by image count, for families whose rows see the batch's padding images.

Mllama pads every row of a batch to the batch's largest image count, and a text token that
sees no image (those before a row's first ``<|image|>``) is not cut off from the images: its
cross-attention output, kept (only the cross-attention layer's MLP output is zeroed for it),
is a uniform average over every vision token of its row, the padding images' included. A
row's score would then depend on its batch-mates' image counts. Rows with the same image count
get no padding images, so ``HFLVLM`` runs such a family's batches (``LVLMFamily.
batch_by_image_count``) as one sub-batch per image count: a batched score or reply is then the
one-at-a-time one (``tests/lvlm/test_hf_lvlm.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from drum.lvlm.prompt import ICLPrompt

T = TypeVar("T")


def in_image_count_groups(
    prompts: Sequence[ICLPrompt], run: Callable[[list[int]], list[T]], group: bool
) -> list[T]:
    """``run(rows)`` (the results of ``prompts[i]`` for ``i`` in ``rows``, in that order) over
    all the prompts at once or, with ``group``, once per image count; the results in the
    prompts' order."""
    if not group:
        return run(list(range(len(prompts))))
    groups: dict[int, list[int]] = {}
    for index, prompt in enumerate(prompts):
        groups.setdefault(len(prompt.images), []).append(index)
    results: dict[int, T] = {}
    for rows in groups.values():
        results.update(zip(rows, run(rows), strict=True))
    return [results[index] for index in range(len(prompts))]

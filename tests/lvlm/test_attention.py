"""The attention reader's pure parts (``drum.lvlm.attention``): visual tokens back onto the
patch grid, and the least-attended block. Region choice on real bases is tested with the data
that uses it (``tests/builtin/vpgc/test_regions.py``)."""

from __future__ import annotations

import pytest
import torch

from drum.lvlm.attention import least_attended_blocks, visual_tokens_to_grid


def test_visual_tokens_map_back_to_patches() -> None:
    weights = torch.arange(17, dtype=torch.float)[None]  # CLS + 16 patches
    assert torch.equal(visual_tokens_to_grid(weights, 4)[0], torch.arange(1.0, 17).reshape(4, 4))
    assert torch.equal(visual_tokens_to_grid(weights[:, 1:], 4)[0],
                       torch.arange(1.0, 17).reshape(4, 4))  # fmt: skip
    merged = visual_tokens_to_grid(torch.tensor([[1.0, 2.0, 3.0, 4.0]]), 4, merge=2)[0]
    assert torch.equal(merged[:2, :2], torch.ones(2, 2)) and merged[3, 3] == 4 and merged[0, 2] == 2
    with pytest.raises(ValueError, match="do not map onto a 4x4 patch grid"):
        visual_tokens_to_grid(torch.ones(1, 7), 4)
    with pytest.raises(ValueError, match=r"with 4x4 patches per token \(expected 4\)"):
        visual_tokens_to_grid(torch.ones(1, 16), 8, merge=4)  # a resized image: 16 tokens


def test_least_attended_blocks() -> None:
    grid = torch.ones(2, 4, 4)
    grid[0, 2:, 1:3] = 0  # the 2x2 block at (2, 1)
    grid[1, 0, 3] = -1
    assert least_attended_blocks(grid, 2) == [(2, 1), (0, 2)]
    assert least_attended_blocks(torch.zeros(1, 3, 3), 2) == [(0, 0)]  # ties: row-major first
    with pytest.raises(ValueError, match=r"block must be in \[1, 4\]"):
        least_attended_blocks(grid, 5)

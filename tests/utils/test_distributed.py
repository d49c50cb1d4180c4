"""The distributed layer: sharding, part paths, the single-process no-ops, gloo collectives."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from drum.testing import spawn_ranks
from drum.utils.distributed import (
    DistContext,
    block_bounds,
    part_path,
    read_parts,
    shard,
    shard_bounds,
)


@pytest.mark.parametrize("n", [0, 1, 5, 7, 16])
@pytest.mark.parametrize("world_size", [1, 2, 3, 8])
def test_shards_are_contiguous_balanced_and_concatenate_to_the_items(
    n: int, world_size: int
) -> None:
    items = list(range(n))
    blocks = [shard(items, rank, world_size) for rank in range(world_size)]
    assert [x for block in blocks for x in block] == items
    sizes = [len(block) for block in blocks]
    assert max(sizes) - min(sizes) <= 1
    assert shard_bounds(n, world_size - 1, world_size)[1] == n


def test_shard_rejects_a_rank_outside_the_world() -> None:
    with pytest.raises(ValueError, match=r"rank 2 is not in \[0, 2\)"):
        shard([1, 2], 2, 2)


def test_block_bounds_split_whole_units() -> None:
    # 24 items, units of 8: 3 units over 2 ranks -> [0, 8) and [8, 24).
    assert [block_bounds(24, 8, r, 2) for r in range(2)] == [(0, 8), (8, 24)]
    # A short last unit; an empty block for a rank with no unit left.
    assert [block_bounds(10, 4, r, 4) for r in range(4)] == [(0, 0), (0, 4), (4, 8), (8, 10)]
    assert block_bounds(0, 4, 1, 2) == (0, 0)
    with pytest.raises(ValueError, match="unit"):
        block_bounds(4, 0, 0, 1)


def test_part_path_names_rank_and_world() -> None:
    assert part_path(Path("runs/cache"), 1, 4, "image.safetensors") == Path(
        "runs/cache.parts/rank-1-of-4.image.safetensors"
    )


def test_read_parts_reads_every_rank_in_rank_order(tmp_path: Path) -> None:
    out = tmp_path / "result"
    for rank in (2, 0, 1):
        path = part_path(out, rank, 3, "txt")
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"part {rank}")
    read = read_parts(out, 3, "txt", lambda rank, path: (rank, path.read_text()))
    assert read == [(0, "part 0"), (1, "part 1"), (2, "part 2")]


def test_without_launcher_variables_the_context_is_one_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    context = DistContext.from_env()
    assert (context.rank, context.world_size, context.is_main) == (0, 1, True)
    assert not torch.distributed.is_initialized()
    context.barrier()
    assert context.all_gather_object({"a": 1}) == [{"a": 1}]
    assert context.broadcast_object(3) == 3
    local = torch.ones(2, 3, requires_grad=True)
    assert context.all_gather_rows(local, [2]) is local


def test_bad_launcher_variables_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE='two' is not an integer"):
        DistContext.from_env()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ValueError, match=r"RANK=2 is not in \[0, WORLD_SIZE=2\)"):
        DistContext.from_env()


def _collectives(out: Path) -> None:
    context = DistContext.from_env()
    assert context.distributed and torch.distributed.get_backend() == "gloo"
    gathered = context.all_gather_object(["x"] * (context.rank + 1))  # variable length
    assert gathered == [["x"], ["x", "x"]]
    assert context.broadcast_object(f"from {context.rank}") == "from 0"
    sizes = [3, 2]  # uneven blocks
    local = torch.full((sizes[context.rank], 2), float(context.rank + 1), requires_grad=True)
    rows = context.all_gather_rows(local, sizes)
    assert rows.tolist() == [[1.0, 1.0]] * 3 + [[2.0, 2.0]] * 2
    (rows.sum(dim=1) * torch.arange(5.0)).sum().backward()
    # The gradient reaches the own block only, as the global loss's gradient there.
    expected = torch.arange(5.0)[:, None].expand(5, 2)
    start = sum(sizes[: context.rank])
    torch.testing.assert_close(local.grad, expected[start : start + sizes[context.rank]])
    (out / f"ok-{context.rank}").write_text("ok")


@pytest.mark.slow
def test_collectives_over_two_gloo_processes(tmp_path: Path) -> None:
    spawn_ranks(_collectives, 2, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok-0", "ok-1"]

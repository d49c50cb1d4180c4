"""The built-in world's tasks (``drum.builtin.world.tasks``): one per task type, by split."""

from __future__ import annotations

from pathlib import Path

import pytest

from drum.builtin.world.tasks import world_tasks


def test_world_tasks_cover_the_three_task_types(tiny_world: Path) -> None:
    tasks = world_tasks(tiny_world)
    assert list(tasks) == ["vqa", "caption", "classification"]
    assert {name: t.max_new_tokens for name, t in tasks.items()} == {
        "vqa": 3,
        "caption": 8,
        "classification": 3,
    }
    assert tasks["vqa"].metrics == ("vqa_accuracy",)
    assert tasks["caption"].primary_metric == "cider"
    assert tasks["caption"].queries == tiny_world / "caption" / "test.jsonl"
    assert world_tasks(tiny_world, split="val")["vqa"].queries.name == "val.jsonl"


def test_world_tasks_reject_a_bad_split_or_directory(tiny_world: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="split"):
        world_tasks(tiny_world, split="pool")
    with pytest.raises(FileNotFoundError, match="make-world"):
        world_tasks(tmp_path)

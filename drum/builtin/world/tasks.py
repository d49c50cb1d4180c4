"""The built-in world's evaluation tasks as ``TaskSpec``s: one task of each type, named after it.

A world written by ``drum data make-world`` (``drum.builtin.world.generate``) holds, per task
type, ``<world>/<type>/pool.jsonl`` (the demonstrations) and ``val.jsonl`` / ``test.jsonl``
(the queries). ``world_tasks`` reads that layout; any other dataset is a JSON task file
(``drum.tasks.spec.load_task_file``).

Example::

    tasks = world_tasks("runs/demo/world", split="val")
    tasks["vqa"].queries   # runs/demo/world/vqa/val.jsonl
"""

from __future__ import annotations

import os
from pathlib import Path

from drum.data.example import TASK_TYPES
from drum.tasks.spec import TaskSpec

WORLD_TASKS = TASK_TYPES  # the built-in world has one task of each type, named after it
QUERY_SPLITS = ("val", "test")


def world_tasks(world_dir: str | os.PathLike[str], split: str = "test") -> dict[str, TaskSpec]:
    """The built-in world's tasks (``vqa``, ``caption``, ``classification``) by name.

    Demonstrations come from each task's ``pool.jsonl``, queries from ``{split}.jsonl``.

    Raises:
        ValueError: ``split`` is not one of ``QUERY_SPLITS``.
        FileNotFoundError: a pool or query file is missing (``world_dir`` is no world).
    """
    if split not in QUERY_SPLITS:
        raise ValueError(f"query split must be one of {QUERY_SPLITS}, got {split!r}")
    world_dir = Path(world_dir)
    tasks = {}
    for name in WORLD_TASKS:
        spec = TaskSpec(
            name=name,
            task_type=name,
            pool=world_dir / name / "pool.jsonl",
            queries=world_dir / name / f"{split}.jsonl",
        )
        for path in (spec.pool, spec.queries):
            if not path.is_file():
                raise FileNotFoundError(
                    f"{path} not found: is {world_dir} a world (drum data make-world)?"
                )
        tasks[name] = spec
    return tasks

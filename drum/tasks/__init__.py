"""Evaluation tasks as data (``TaskSpec``): the built-in world's tasks and JSON task files."""

from drum.tasks.spec import (
    DEFAULT_MAX_NEW_TOKENS,
    TaskFileError,
    TaskSpec,
    load_task_file,
    world_tasks,
)

__all__ = ["DEFAULT_MAX_NEW_TOKENS", "TaskFileError", "TaskSpec", "load_task_file", "world_tasks"]

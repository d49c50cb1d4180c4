"""Evaluation tasks as data (``TaskSpec``) and JSON task files; the built-in world's tasks are
``drum.builtin.world.tasks``."""

from drum.tasks.spec import DEFAULT_MAX_NEW_TOKENS, TaskFileError, TaskSpec, load_task_file

__all__ = ["DEFAULT_MAX_NEW_TOKENS", "TaskFileError", "TaskSpec", "load_task_file"]

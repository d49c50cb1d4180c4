"""Evaluation tasks as data (``TaskSpec``) and JSON task files; the built-in world's tasks are
``drum.builtin.world.tasks``.

The names below load lazily (PEP 562): importing the package imports none of its modules.
"""

from drum.utils.lazy import lazy_exports

__all__ = [
    "DEFAULT_MAX_NEW_TOKENS",
    "TaskFileError",
    "TaskSpec",
    "load_task_file",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "DEFAULT_MAX_NEW_TOKENS": "drum.tasks.spec",
        "TaskFileError": "drum.tasks.spec",
        "TaskSpec": "drum.tasks.spec",
        "load_task_file": "drum.tasks.spec",
    },
)

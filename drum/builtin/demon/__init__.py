"""Built-in DEMON-style tasks over the built-in world: the CPU face of the DEMON benchmark.

Nine tasks covering DEMON's seven categories, written in the release layout
(``drum.demon.format``) by ``make_builtin_demon``. See ``docs/demon.md``, "Built-in tasks".
"""

from drum.builtin.demon.card import builtin_categories
from drum.builtin.demon.config import BuiltinDemonConfig
from drum.builtin.demon.make import make_builtin_demon
from drum.builtin.demon.tasks import DEMON_TASKS, IMAGE_CHOICE_BUILTIN_TASKS, TaskGenerator

__all__ = [
    "IMAGE_CHOICE_BUILTIN_TASKS",
    "DEMON_TASKS",
    "BuiltinDemonConfig",
    "TaskGenerator",
    "builtin_categories",
    "make_builtin_demon",
]

"""The card of a built-in DEMON root (``<root>/builtin_demon.json``, written by
``make_builtin_demon``), read without generating anything.

``builtin_categories`` gives the built-in tasks' own category map, so that ``drum demon score``
and ``drum demon eval`` aggregate them by category: they are outside the reference's 29 tasks,
so the reference's ``CATEGORIES`` would leave every one under "other". ``register_card_scoring``
registers the card's image-choice tasks with ``drum.demon.scorers``, so that a root is scored
as it was written whatever has been imported (the kit's ``tasks`` registers its own on import).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from drum.demon.scorers import register_image_choice_task

CARD = "builtin_demon.json"


def builtin_card_path(data_root: str | os.PathLike[str]) -> Path | None:
    """The card of the built-in root that ``data_root`` is (or is a split folder of, such as
    ``<root>/test``), or None when ``data_root`` is no built-in root."""
    root = Path(data_root)
    for candidate in (root / CARD, root.parent / CARD):
        if candidate.is_file():
            return candidate
    return None


def _read_card(path: Path) -> dict[str, Any]:
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not a built-in DEMON card: {error!r}") from error
    if not isinstance(card, dict):
        raise ValueError(f"{path}: not a built-in DEMON card (expected a JSON object)")
    return card


def builtin_categories(data_root: str | os.PathLike[str]) -> dict[str, tuple[str, ...]] | None:
    """Category -> its built-in tasks, in the card's order (``DEMON_TASKS``'s, which wrote it), for
    a built-in root or one of its split folders; None for any other root (a DEMON release).

    Read from the card rather than ``DEMON_TASKS``, so a root written by another version of the
    tasks is grouped as it was written.

    Raises:
        ValueError: the card is not JSON, or has no ``tasks: {name: {"category": ...}}``.
    """
    path = builtin_card_path(data_root)
    if path is None:
        return None
    try:
        tasks = _read_card(path)["tasks"]
        categories: dict[str, list[str]] = {}
        for name, entry in tasks.items():
            categories.setdefault(str(entry["category"]), []).append(name)
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(
            f"{path}: not a built-in DEMON card (expected tasks: {{name: {{category, ...}}}}): "
            f"{error!r}"
        ) from error
    return {name: tuple(members) for name, members in categories.items()}


def register_card_scoring(data_root: str | os.PathLike[str]) -> frozenset[str]:
    """Register the image-choice tasks that the card of a built-in root (or of one of its split
    folders) records with ``drum.demon.scorers.register_image_choice_task``, and return them;
    nothing for any other root.

    Raises:
        ValueError: the card is not JSON, or its ``image_choice_tasks`` is not a list of names.
    """
    path = builtin_card_path(data_root)
    if path is None:
        return frozenset()
    names = _read_card(path).get("image_choice_tasks")
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ValueError(f"{path}: image_choice_tasks must be a list of task names, got {names!r}")
    for name in names:
        register_image_choice_task(name)
    return frozenset(names)

"""The card of a built-in DEMON root (``<root>/builtin_demon.json``, written by
``make_builtin_demon``), read without generating anything.

``builtin_categories`` gives the built-in tasks' own category map, so that ``drum demon score``
and ``drum demon eval`` aggregate them by category: they are outside the reference's 29 tasks,
so the reference's ``CATEGORIES`` would leave every one under "other".
"""

from __future__ import annotations

import json
import os
from pathlib import Path

CARD = "builtin_demon.json"


def builtin_card_path(data_root: str | os.PathLike[str]) -> Path | None:
    """The card of the built-in root that ``data_root`` is (or is a split folder of, such as
    ``<root>/test``), or None when ``data_root`` is no built-in root."""
    root = Path(data_root)
    for candidate in (root / CARD, root.parent / CARD):
        if candidate.is_file():
            return candidate
    return None


def builtin_categories(data_root: str | os.PathLike[str]) -> dict[str, tuple[str, ...]] | None:
    """Category -> its built-in tasks, in the card's order (``TASKS``'s, which wrote it), for
    a built-in root or one of its split folders; None for any other root (a DEMON release).

    Read from the card rather than ``TASKS``, so a root written by another version of the
    tasks is grouped as it was written.

    Raises:
        ValueError: the card is not JSON, or has no ``tasks: {name: {"category": ...}}``.
    """
    path = builtin_card_path(data_root)
    if path is None:
        return None
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))["tasks"]
        categories: dict[str, list[str]] = {}
        for name, entry in tasks.items():
            categories.setdefault(str(entry["category"]), []).append(name)
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(
            f"{path}: not a built-in DEMON card (expected tasks: {{name: {{category, ...}}}}): "
            f"{error!r}"
        ) from error
    return {name: tuple(members) for name, members in categories.items()}

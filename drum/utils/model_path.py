"""The model argument of the loaders: a ``save_pretrained`` directory or a hub id, checked
before ``transformers`` gets it, so a typo is one clear line rather than
``HFValidationError: Repo id must be in the form 'repo_name'``."""

from __future__ import annotations

import os
import re
from pathlib import Path

# A hub id: "name" or "org/name"; each part starts and ends with a letter, digit or "_".
_PART = r"\w(?:[\w.-]*\w)?"
_HUB_ID = re.compile(rf"(?:{_PART}/)?{_PART}")
_HUB_ID_MAX_LENGTH = 96
EXPECTED = "expected a save_pretrained directory (with config.json) or a hub id 'org/name'"


class ModelPathError(ValueError):
    """A model argument that is neither a model directory nor a loadable hub id."""


def is_hub_id(text: str) -> bool:
    """Whether ``text`` has the form of a Hugging Face hub id (``name`` or ``org/name``)."""
    return (
        len(text) <= _HUB_ID_MAX_LENGTH
        and _HUB_ID.fullmatch(text) is not None
        and "--" not in text
        and ".." not in text
    )


def _looks_like_path(text: str) -> bool:
    separators = {os.sep, os.altsep} - {None, "/"}
    return (
        text.startswith(("/", ".", "~"))
        or text.count("/") > 1
        or any(separator in text for separator in separators)
    )


def check_model_path(model_name_or_path: str | os.PathLike[str]) -> None:
    """Raise ``ModelPathError`` unless ``model_name_or_path`` can name a model.

    An existing directory must hold a ``config.json``; an existing file is an error; a path
    that does not exist is an error when it looks like a path (a ``Path`` object, a leading
    ``/ . ~``, more than one ``/``) or is no valid hub id. Anything else is left to the hub.

    Example::

        check_model_path("models/embedder")  # fine when it is a model directory
        check_model_path("./no/such/model")  # ModelPathError: no such directory, ...
    """
    text = str(model_name_or_path)
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelPathError(
                f"{text}: a directory without config.json, not a model; {EXPECTED}"
            )
        return
    if path.exists():
        raise ModelPathError(f"{text}: a file, not a model directory; {EXPECTED}")
    if isinstance(model_name_or_path, os.PathLike) or _looks_like_path(text) or not is_hub_id(text):
        raise ModelPathError(f"{text}: no such directory, and not a hub id; {EXPECTED}")


def model_load_error(
    model_name_or_path: str | os.PathLike[str], error: BaseException
) -> ModelPathError:
    """A one-line ``ModelPathError`` for a ``from_pretrained`` failure (hub id not in the
    offline cache, a directory whose files are not a model's)."""
    text = str(model_name_or_path)
    first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
    if Path(text).expanduser().is_dir():
        return ModelPathError(f"{text}: not a loadable model ({first_line})")
    return ModelPathError(
        f"{text}: no such directory, and the hub could not provide it ({first_line})"
    )

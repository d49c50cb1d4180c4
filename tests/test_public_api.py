"""``import drum``: the top-level names load lazily, resolve, and document an example."""

from __future__ import annotations

import subprocess
import sys

import pytest

import drum


def test_import_drum_loads_no_heavy_library() -> None:
    code = (
        "import sys, drum; "
        "heavy = [m for m in ('torch', 'transformers', 'faiss') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize("name", sorted(drum._PUBLIC))
def test_public_name_resolves_to_its_definition(name: str) -> None:
    value = getattr(drum, name)
    assert value.__name__ == name
    assert value.__module__ == drum._PUBLIC[name]
    assert "Example:" in (value.__doc__ or ""), f"drum.{name} has no Example: block"


def test_dir_lists_the_public_names_and_unknown_names_fail() -> None:
    assert set(drum.__all__) == {"__version__", *drum._PUBLIC}
    assert set(drum._PUBLIC) <= set(dir(drum))
    with pytest.raises(AttributeError, match="no_such_name"):
        drum.no_such_name  # noqa: B018


def test_data_metrics_and_tasks_import_no_heavy_library() -> None:
    # docs/architecture.md promises it: task files and metrics are usable without torch.
    code = (
        "import sys, drum.data, drum.metrics, drum.tasks; "
        "heavy = ('torch', 'transformers', 'faiss', 'pycocoevalcap'); "
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""

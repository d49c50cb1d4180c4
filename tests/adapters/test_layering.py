"""The adapters are toolkit, not kit: nothing in ``drum.adapters`` (nor in ``drum.lvlm``,
which they sit on) imports the built-in kit (``drum.builtin``); the kit makes their data."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import drum

PACKAGES = ("adapters", "lvlm")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", PACKAGES)
def test_nothing_imports_the_builtin_kit(package: str) -> None:
    root = Path(drum.__file__).parent
    offenders = [
        str(path.relative_to(root))
        for path in sorted((root / package).rglob("*.py"))
        if any(
            name == "drum.builtin" or name.startswith("drum.builtin.") for name in _imports(path)
        )
    ]
    assert offenders == []

"""``docs/architecture.md`` names every module of the package, each in its package's row of
"Who owns what", and every package has a row: the table describes the code as it is."""

from __future__ import annotations

import re
from pathlib import Path

import drum

PACKAGE = Path(drum.__file__).parent
DOC = PACKAGE.parent / "docs" / "architecture.md"
SKIPPED = {"__init__", "__main__"}


def owner_rows() -> dict[str, str]:
    """``drum.x.y`` -> the text of its row in the "Who owns what" table."""
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\| `(drum(?:\.\w+)*)` \| (.*) \|$", line)
        if match:
            rows[match.group(1)] = match.group(2)
    return rows


def package_of(path: Path) -> str:
    return ".".join(path.parent.relative_to(PACKAGE.parent).parts)


def test_every_package_has_a_row_and_every_module_is_named_in_it() -> None:
    rows = owner_rows()
    missing_packages, missing_modules = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "assets" in path.relative_to(PACKAGE).parts:
            continue
        package = package_of(path)
        if path.stem in SKIPPED:
            if package not in rows:
                missing_packages.append(package)
            continue
        if package == "drum":  # drum/registry.py, results.py, testing.py: rows of their own
            if f"drum.{path.stem}" not in rows:
                missing_modules.append(f"drum.{path.stem}")
            continue
        row = rows.get(package, "")
        if f"`{path.stem}`" not in row:
            missing_modules.append(f"{package}.{path.stem}")
    assert missing_packages == [], f"packages without a row: {missing_packages}"
    assert missing_modules == [], f"modules not named in their package's row: {missing_modules}"


def test_every_row_names_a_package_or_module_that_exists() -> None:
    stale = [
        name
        for name in owner_rows()
        if not (PACKAGE.parent / name.replace(".", "/")).is_dir()
        and not (PACKAGE.parent / (name.replace(".", "/") + ".py")).is_file()
    ]
    assert stale == []

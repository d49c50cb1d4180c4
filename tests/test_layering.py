"""The layering rules docs/architecture.md states: the toolkit does not import its kit
(outside ``drum/builtin/``, ``drum/pipelines/`` and ``drum/cli/`` no module imports
``drum.builtin``, at module level or lazily inside a function), and no module of
``drum.data``, ``drum.metrics`` or ``drum.tasks`` loads torch, transformers or FAISS; and
every trainer runs the one training loop (``drum.utils.train_loop.run_training``).

Every module under ``drum/`` is parsed with ``ast`` (nothing is imported), so a lazy import in a
function body counts as much as one at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import drum

PACKAGE = Path(drum.__file__).parent
KIT = "drum.builtin"
# Folders (relative to drum/) whose modules may import the kit: the kit itself and the layers
# that compose the toolkit with it.
ALLOWED = ("builtin", "pipelines", "cli")


def imported_modules(tree: ast.AST, module_name: str) -> set[str]:
    """Every module an ``import`` or ``from ... import`` anywhere in ``tree`` names, relative
    imports resolved against ``module_name``; ``from a import b`` names ``a`` and ``a.b``."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module_name.split(".")[: -node.level]
                base = ".".join([*package, node.module] if node.module else package)
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def imports_kit(path: Path) -> bool:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    module_name = ".".join(relative.parts)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return any(
        name == KIT or name.startswith(KIT + ".") for name in imported_modules(tree, module_name)
    )


def library_modules() -> list[Path]:
    return [
        path
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.relative_to(PACKAGE).parts[0] not in ALLOWED
    ]


def test_imported_modules_sees_lazy_relative_and_from_imports() -> None:
    tree = ast.parse(
        "import os\n"
        "def f():\n"
        "    from drum.builtin.world import tasks\n"
        "class C:\n"
        "    def g(self):\n"
        "        import drum.builtin.demon.card as card\n"
        "from .. import builtin\n"
    )
    found = imported_modules(tree, "drum.tasks.spec")
    assert {"os", "drum.builtin.world", "drum.builtin.demon.card", "drum.builtin"} <= found


def test_nothing_outside_builtin_pipelines_and_cli_imports_the_kit() -> None:
    offenders = [
        str(path.relative_to(PACKAGE.parent)) for path in library_modules() if imports_kit(path)
    ]
    assert offenders == [], f"{offenders} import {KIT}; only {ALLOWED} may"


def test_data_metrics_and_tasks_modules_import_no_heavy_library() -> None:
    # Every module of these three, not only their packages: task files, datasets and metrics
    # are usable without torch, transformers or FAISS.
    import subprocess
    import sys

    names = [
        ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        for folder in ("data", "metrics", "tasks")
        for path in sorted((PACKAGE / folder).rglob("*.py"))
    ]
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "print(','.join(m for m in ('torch', 'transformers', 'faiss') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert len(names) > 10 and out.stdout.strip() == ""


def _calls(tree: ast.AST, name: str) -> bool:
    return any(
        isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Name) and node.func.id == name)
            or (isinstance(node.func, ast.Attribute) and node.func.attr == name)
        )
        for node in ast.walk(tree)
    )


def test_every_trainer_runs_the_one_training_loop() -> None:
    # A module that trains into a Checkpointer does so through run_training: one loop for the
    # budget, resume, progress, history, checkpoint cadence and finish.
    trainers, offenders = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.parent.name == "utils" and path.stem in ("checkpoint", "train_loop"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        if _calls(tree, "Checkpointer"):
            trainers.append(path.relative_to(PACKAGE).as_posix())
            if not _calls(tree, "run_training"):
                offenders.append(trainers[-1])
    assert len(trainers) >= 5 and offenders == [], offenders

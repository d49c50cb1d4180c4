"""``drum.registry.Registry``: objects and lazy targets, duplicates, unknown names, laziness."""

from __future__ import annotations

import subprocess
import sys

import pytest

from drum.registry import Registry, UnknownNameError


def test_objects_and_lazy_targets_resolve() -> None:
    registry = Registry("thing")
    registry.register("path", "pathlib:Path")
    marker = object()
    registry.register("marker", marker)
    from pathlib import Path

    assert registry.get("path") is Path
    assert registry["path"] is Path
    assert registry.get("marker") is marker
    assert registry.names() == ["marker", "path"]
    assert "path" in registry and "other" not in registry


def test_a_name_registered_twice_must_keep_its_target() -> None:
    registry = Registry("thing")
    registry.register("path", "pathlib:Path")
    registry.register("path", "pathlib:Path")  # the same target: fine
    with pytest.raises(ValueError, match="thing 'path' is already registered as pathlib:Path"):
        registry.register("path", "pathlib:PurePath")
    registry.register("answer", 42)
    registry.register("answer", 42)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("answer", 43)
    with pytest.raises(ValueError, match="module:attribute"):
        registry.register("bad", "pathlib.Path")


def test_an_unknown_name_lists_the_choices_and_is_a_key_and_value_error() -> None:
    registry = Registry("loss")
    registry.register("listnet", "drum.losses.listnet:ListNetLoss")
    registry.register("lambda", "drum.losses.lambda_rank:LambdaMRRLoss")
    with pytest.raises(UnknownNameError) as caught:
        registry.get("listmle")
    assert str(caught.value) == "unknown loss 'listmle'; choose one of ['lambda', 'listnet']"
    assert isinstance(caught.value, KeyError) and isinstance(caught.value, ValueError)
    with pytest.raises(KeyError):
        registry["listmle"]


def test_listing_imports_nothing_and_get_imports_once() -> None:
    code = (
        "import sys\n"
        "from drum.registry import Registry\n"
        "r = Registry('module')\n"
        "r.register('parser', 'email.parser:Parser')\n"
        "assert r.names() == ['parser'] == list(r) and 'parser' in r\n"
        "assert 'email.parser' not in sys.modules\n"
        "parser = r.get('parser')\n"
        "assert 'email.parser' in sys.modules and r.get('parser') is parser\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_library_registries_list_without_importing_their_entries() -> None:
    code = (
        "import sys\n"
        "from drum.losses.registry import RANKING_LOSSES\n"
        "from drum.metrics.registry import METRICS\n"
        "from drum.retrieve.strategies import STRATEGY_REGISTRY\n"
        "from drum.data.importers import FORMATS\n"
        "names = RANKING_LOSSES.names(), METRICS.names(), STRATEGY_REGISTRY.names()\n"
        "assert all(names) and FORMATS.names()\n"
        "heavy = ('torch', 'faiss', 'pycocoevalcap', 'datasets', 'drum.data.importers.formats')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1] == ""

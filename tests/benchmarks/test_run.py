"""``benchmarks/run.py``: every ``bench_*.py`` in its own process; a skipped one (exit 77) is
not a failure, a failed one is."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

RUN = Path(__file__).resolve().parents[2] / "benchmarks" / "run.py"


@pytest.fixture
def run_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """``run.py`` pointed at ``tmp_path``, where the tests write their benchmark scripts."""
    spec = importlib.util.spec_from_file_location("bench_run", RUN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "BENCH_DIR", tmp_path)
    return module


def _script(directory: Path, name: str, status: int) -> None:
    (directory / f"bench_{name}.py").write_text(f"import sys\nsys.exit({status})\n")


def test_a_skipped_benchmark_is_not_a_failure(
    run_module: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _script(tmp_path, "ok", 0)
    _script(tmp_path, "gpu", 77)
    assert run_module.main([]) == 0
    assert "skipped" in capsys.readouterr().err


def test_a_failed_benchmark_fails_the_run(run_module: ModuleType, tmp_path: Path) -> None:
    _script(tmp_path, "gpu", 77)
    _script(tmp_path, "broken", 1)
    assert run_module.main([]) == 1

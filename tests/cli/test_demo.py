"""``drum demo``: the CLI, not the pipeline, limits torch to two threads."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from drum.cli.main import app


def test_demo_limits_threads_then_runs_the_pipeline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import drum.pipelines.demo as demo

    events: list[Any] = []
    monkeypatch.setattr(torch, "set_num_threads", lambda n: events.append(("threads", n)))
    real = demo.run_demo

    # The CLI's option defaults are read off ``run_demo``'s signature when it runs: keep it.
    def fake(out: Path, quick: bool = False, use_assets: bool = True) -> None:
        events.append(("demo", {"quick": quick, "use_assets": use_assets}))

    fake.__signature__ = inspect.signature(real)  # type: ignore[attr-defined]
    monkeypatch.setattr(demo, "run_demo", fake)
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "--quick"])
    assert result.exit_code == 0, result.output
    (threads, count), call = events
    assert threads == "threads" and 1 <= count <= 2
    assert call == ("demo", {"quick": True, "use_assets": True})
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "--no-assets"])
    assert result.exit_code == 0, result.output
    assert events[-1] == ("demo", {"quick": False, "use_assets": False})


def test_the_demo_pipeline_leaves_threads_alone() -> None:
    import drum.pipelines.demo as demo

    assert "set_num_threads" not in Path(demo.__file__).read_text()

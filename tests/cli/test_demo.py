"""``drum demo``: the CLI, not the pipeline, limits torch to two threads."""

from __future__ import annotations

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
    monkeypatch.setattr(demo, "run_demo", lambda out, **kwargs: events.append(("demo", kwargs)))
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "--quick"])
    assert result.exit_code == 0, result.output
    (threads, count), call = events
    assert threads == "threads" and 1 <= count <= 2
    assert call == ("demo", {"quick": True, "use_assets": True})


def test_the_demo_pipeline_leaves_threads_alone() -> None:
    import drum.pipelines.demo as demo

    assert "set_num_threads" not in Path(demo.__file__).read_text()

"""``drum serve``'s batching options: bad values are one line and exit 2 before any model is
loaded; good ones reach the engine the app serves (the server itself: ``tests/serve``)."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from drum.builtin.assets import ASSETS_DIR
from drum.cli.main import app
from drum.serve.batching import BatchingConfig


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--max-batch-size", "0", "--max-batch-size must be >= 1, got 0"),
        ("--max-batch-size", "-3", "--max-batch-size must be >= 1, got -3"),
        ("--batch-wait-ms", "-1", "--batch-wait-ms must be a number of milliseconds >= 0"),
        ("--batch-wait-ms", "nan", "--batch-wait-ms must be a number of milliseconds >= 0"),
        ("--batch-wait-ms", "inf", "--batch-wait-ms must be a number of milliseconds >= 0"),
    ],
)
def test_bad_batching_options_exit_2(option: str, value: str, message: str) -> None:
    # The model does not exist: the option is checked first.
    result = CliRunner().invoke(app, ["serve", "--model", "no/such/model", option, value])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(("args", "expected"), [([], BatchingConfig()), (
    ["--max-batch-size", "1", "--batch-wait-ms", "0"], BatchingConfig(1, 0.0))])  # fmt: skip
def test_the_options_reach_the_served_engine(
    monkeypatch: pytest.MonkeyPatch, args: list[str], expected: BatchingConfig
) -> None:
    import uvicorn

    served: list[Any] = []
    # Serving would block until interrupted: the app uvicorn would run is kept instead.
    monkeypatch.setattr(uvicorn, "run", lambda served_app, **_: served.append(served_app))
    result = CliRunner().invoke(app, ["serve", "--model", str(ASSETS_DIR / "lvlm"), *args])
    assert result.exit_code == 0, result.output
    [served_app] = served
    assert served_app.state.engine.batching == expected

"""``--model`` / ``--lvlm openai:<base_url>#<model>`` on the commands that take an LVLM: the
spelling checked before any work, an adapter refused on a served model, and a server that does
not answer one line and exit 2 (the served runs themselves: ``tests/serve``)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from drum.cli.main import app
from tests.serve.conftest import free_port


def test_a_bad_spec_and_an_adapter_on_a_served_model_exit_2(tiny_world: Path) -> None:
    mine = ["mine", "--world", str(tiny_world), "--lvlm", "openai:http://127.0.0.1:1/v1"]
    result = CliRunner().invoke(app, [*mine, "--out", "x"])
    assert result.exit_code == 2 and "--lvlm: 'openai:http://127.0.0.1:1/v1': no model name" in (
        result.output
    )
    args = ["eval", "--world", str(tiny_world), "--task", "vqa", "--strategy", "random"]
    args += ["--model", "openai:http://127.0.0.1:1/v1#m", "--adapter", "some/adapter"]
    result = CliRunner().invoke(app, [*args, "--out", "y"])
    assert result.exit_code == 2 and "an adapter goes on an in-process model" in result.output


def test_a_server_that_does_not_answer_is_one_line_and_exit_2(
    tiny_world: Path, tmp_path: Path
) -> None:
    spec = f"openai:http://127.0.0.1:{free_port()}/v1#m?retries=1&backoff=0.01&cache_dir=none"
    args = ["eval", "--world", str(tiny_world), "--task", "vqa", "--strategy", "random"]
    args += ["--shots", "1", "--seeds", "0", "--max-queries", "2", "--model", spec]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert "gave up after 2 tries: connection error" in result.output
    errors = [line for line in result.output.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("error: --model: POST http://127.0.0.1:")
    assert "Traceback" not in result.output

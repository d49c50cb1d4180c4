"""``drum eval``: result tables (rich in a terminal, markdown in a pipe) and ``--adapter``."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from rich.table import Table

from drum.cli.common import show_tables


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_pipe_gets_the_markdown(capsys: pytest.CaptureFixture[str]) -> None:
    show_tables("| strategy | 1-shot |", Table("never shown"))
    assert capsys.readouterr().out == "| strategy | 1-shot |\n"


def test_a_terminal_gets_the_rich_table(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    table = Table("strategy", "1-shot")
    table.add_row("concat", "0.571 [.51,.63]")
    show_tables("| markdown |", table)
    assert "0.571 [.51,.63]" in terminal.getvalue()
    assert "| markdown |" not in terminal.getvalue()


def test_eval_puts_a_vpgc_adapter_on_the_model(
    tiny_world: Path, tiny_llava_dir: Path, tmp_path: Path
) -> None:
    import json

    import torch
    from typer.testing import CliRunner

    from drum.adapters.vpgc import VPGCLVLM, VPGCConfig
    from drum.cli.main import app
    from drum.lvlm.hf import HFLVLM

    model = VPGCLVLM(HFLVLM(tiny_llava_dir), VPGCConfig(num_heads=1, hidden_size=8))
    with torch.no_grad():
        for parameter in model.trainable_parameters():
            parameter.normal_(0, 0.5)  # not the zero init: the adapter changes the model
    model.save_adapter(tmp_path / "adapter")
    args = ["eval", "--world", str(tiny_world), "--model", str(tiny_llava_dir), "--task", "vqa"]
    args += ["--strategy", "random", "--shots", "1", "--seeds", "0", "--max-queries", "3"]
    runs = {}
    for name, extra in (("plain", []), ("adapted", ["--adapter", str(tmp_path / "adapter")])):
        result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / name), *extra])
        assert result.exit_code == 0, result.output
        runs[name] = json.loads((tmp_path / name / "icl_results.json").read_text())
    fingerprints = {name: run["config"]["lvlm"]["fingerprint"] for name, run in runs.items()}
    assert fingerprints["adapted"] != fingerprints["plain"]

    missing = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "x"), "--adapter", "nope"])
    assert missing.exit_code == 2 and "no such adapter directory" in missing.output


def _adapter_on(base_dir: Path, directory: Path) -> Path:
    from drum.adapters.vpgc import VPGCLVLM, VPGCConfig
    from drum.lvlm.hf import HFLVLM

    return VPGCLVLM(HFLVLM(base_dir), VPGCConfig(num_heads=1, hidden_size=8)).save_adapter(
        directory
    )


def test_a_broken_adapter_exits_2_before_the_model_loads(
    tiny_world: Path, tiny_llava_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safetensors.torch import load_file, save_file
    from typer.testing import CliRunner

    import drum.cli.eval
    from drum.cli.main import app

    adapter = _adapter_on(tiny_llava_dir, tmp_path / "adapter")
    weights = adapter / "adapter_model.safetensors"
    state = load_file(str(weights))
    state["vpgc_out_proj.weight"][0, 0] = float("nan")
    save_file(state, str(weights))

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model loaded before the adapter was checked")

    monkeypatch.setattr(drum.cli.eval, "load_lvlm", never)
    args = ["eval", "--world", str(tiny_world), "--model", str(tiny_llava_dir), "--task", "vqa"]
    args += ["--strategy", "random", "--out", str(tmp_path / "out"), "--adapter", str(adapter)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert str(weights) in result.output and "vpgc_out_proj.weight" in result.output


def test_an_adapter_of_another_base_needs_allow_other_base(
    tiny_world: Path, tiny_llava_dir: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from drum.cli.main import app
    from drum.lvlm.hf import HFLVLM
    from tests.lvlm.tiny_lvlms import build_tiny_llava

    other = build_tiny_llava(tmp_path / "other", seed=1).path  # same shapes, other weights
    adapter = _adapter_on(other, tmp_path / "adapter")
    args = ["eval", "--world", str(tiny_world), "--model", str(tiny_llava_dir), "--task", "vqa"]
    args += ["--strategy", "random", "--shots", "0", "--max-queries", "2"]
    args += ["--adapter", str(adapter)]
    refused = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "a")])
    assert refused.exit_code == 2, refused.output
    assert HFLVLM(other).fingerprint in refused.output
    assert HFLVLM(tiny_llava_dir).fingerprint in refused.output
    assert "--allow-other-base" in refused.output
    allowed = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "b"), "--allow-other-base"])
    assert allowed.exit_code == 0, allowed.output
    assert "warning:" in allowed.output and "as allowed" in allowed.output


def test_a_prompt_longer_than_the_context_is_one_line(
    tiny_world: Path, tiny_llava_dir: Path, tmp_path: Path
) -> None:
    import json

    from typer.testing import CliRunner

    from drum.cli.main import app

    lines = (tiny_world / "vqa" / "test.jsonl").read_text().splitlines()
    long = json.loads(lines[0])
    long["text"] = " ".join(["red"] * 1100)  # the tiny LLaVA reads 1024 tokens at most
    long["images"] = [str((tiny_world / "vqa" / image).resolve()) for image in long["images"]]
    queries = tmp_path / "queries.jsonl"
    queries.write_text(json.dumps(long) + "\n")
    task = tmp_path / "task.json"
    task.write_text(
        json.dumps(
            {
                "name": "long",
                "task_type": "vqa",
                "pool": str(tiny_world / "vqa" / "pool.jsonl"),
                "queries": str(queries),
            }
        )
    )
    args = ["eval", "--task-file", str(task), "--model", str(tiny_llava_dir)]
    args += ["--strategy", "random", "--shots", "0", "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    error = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(error) == 1
    assert "task 'long'" in error[0] and "zero-shot" in error[0] and "context of 1024" in error[0]


# --- --embedder NAME=PATH


def _exit_message(capsys: pytest.CaptureFixture[str], call) -> str:  # type: ignore[no-untyped-def]
    import typer

    with pytest.raises(typer.Exit) as raised:
        call()
    assert raised.value.exit_code == 2
    return capsys.readouterr().err


def test_embedder_paths_keep_the_old_spellings_and_take_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from drum.cli.eval import embedder_paths

    assert embedder_paths([], None) == ({}, {})
    assert embedder_paths(["org/clip"], "runs/drum") == (
        {"default": "org/clip", "drum": "runs/drum"},
        {"default": "--embedder", "drum": "--drum-embedder"},
    )
    paths, options = embedder_paths(["drum=runs/drum", "default=org/clip"], None)
    assert paths == {"drum": "runs/drum", "default": "org/clip"}
    assert options["drum"] == "--embedder drum=..."
    odd = tmp_path / "lr=0.1"  # an existing path with '=' in it is a bare path
    odd.mkdir()
    assert embedder_paths([str(odd)], None)[0] == {"default": str(odd)}
    for bad in ("=org/clip", "drum="):
        message = _exit_message(capsys, lambda bad=bad: embedder_paths([bad], None))
        assert "--embedder takes PATH or NAME=PATH" in message
    message = _exit_message(capsys, lambda: embedder_paths(["siglip=org/siglip"], None))
    assert "no registered strategy uses an embedder named 'siglip'" in message
    assert "['default', 'drum', 'joint']" in message
    message = _exit_message(capsys, lambda: embedder_paths(["drum=a"], "b"))
    assert "embedder 'drum' given twice (--embedder drum=... and --drum-embedder)" in message
    message = _exit_message(capsys, lambda: embedder_paths(["a", "default=b"], None))
    assert "given twice" in message


def test_eval_serves_each_named_embedder_to_its_strategies(
    tiny_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from drum.cli import eval as eval_cli
    from drum.cli.main import app
    from drum.eval import icl
    from drum.registry import Registry
    from drum.retrieve import strategies
    from drum.retrieve.strategies import StrategySpec

    registry = Registry("strategy")
    for name in strategies.STRATEGY_REGISTRY.names():
        registry.register(name, strategies.STRATEGY_REGISTRY.get(name))
    registry.register("siglip-image", StrategySpec("siglip-image", "image", embedder="siglip"))
    monkeypatch.setattr(strategies, "STRATEGY_REGISTRY", registry)
    loaded: dict[str, tuple[str, str]] = {}
    served: dict[str, object] = {}

    class Stop(Exception):
        pass

    def load_embedder(path: str, option: str, **_: object) -> str:
        loaded[path] = (path, option)
        return f"encoder:{path}"

    def run_icl_eval(tasks, lvlm, config, encoders, out, **_: object):  # type: ignore[no-untyped-def]
        served.update(encoders)
        raise Stop

    monkeypatch.setattr(eval_cli, "check_model", lambda model, option: None)
    monkeypatch.setattr(eval_cli, "load_embedder", load_embedder)
    monkeypatch.setattr(eval_cli, "load_lvlm", lambda *args, **kwargs: "lvlm")
    monkeypatch.setattr(icl, "run_icl_eval", run_icl_eval)
    args = ["eval", "--world", str(tiny_world), "--model", "m", "--out", str(tmp_path / "out")]
    args += ["--strategy", "image,drum,siglip-image", "--shots", "1"]
    args += ["--embedder", "e0", "--embedder", "drum=e1", "--embedder", "siglip=e2"]
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, Stop), result.output
    assert served == {"default": "encoder:e0", "drum": "encoder:e1", "siglip": "encoder:e2"}
    assert loaded["e2"] == ("e2", "--embedder siglip=...")


def test_a_joint_instruction_needs_a_joint_strategy(
    tiny_world: Path, tiny_llava_dir: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from drum.cli.main import app

    args = ["eval", "--world", str(tiny_world), "--model", str(tiny_llava_dir), "--task", "vqa"]
    args += ["--strategy", "random", "--shots", "1", "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(app, [*args, "--joint-instruction", "what color"])
    assert result.exit_code == 2
    assert "--joint-instruction: no strategy of 'random' embeds joint vectors" in result.output

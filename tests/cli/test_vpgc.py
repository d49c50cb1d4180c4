"""``drum vpgc train``: its options are checked against the base's ``config.json`` before the
base loads or any synthetic data is written (exit 2, one line)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import drum.builtin.vpgc.sources
from drum.cli.main import app


@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the base loaded (training started) before the options were checked")

    monkeypatch.setattr(drum.builtin.vpgc.sources, "train_on_synthetic", never)


def _train(base: Path, out: Path, *options: str) -> str:
    result = CliRunner().invoke(
        app, ["vpgc", "train", "--base", str(base), "--out", str(out), *options]
    )
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert not out.exists() and not (out.parent / f"{out.name}.data").exists()
    return result.output


def test_a_base_that_is_not_a_vision_language_model(
    tiny_clip_dir: Path, tmp_path: Path, no_training: None
) -> None:
    output = _train(tiny_clip_dir, tmp_path / "adapter")
    assert "--base" in output and "'clip'" in output and "llava" in output


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (("--layer", "9"), "layer 9 is out of range"),
        (("--layer", "0"), "layer 0 is out of range"),
        (("--num-heads", "3"), "num_heads (3) must divide hidden_size (16)"),
        (("--hidden-size", "0"), "must divide hidden_size (0)"),
    ],
)
def test_options_that_do_not_fit_the_base(
    tiny_llava_dir: Path, tmp_path: Path, no_training: None, options: tuple[str, ...], expected: str
) -> None:
    output = _train(tiny_llava_dir, tmp_path / "adapter", *options)
    assert expected in output and "--base" in output


def test_attention_regions_on_a_cross_attention_base(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, no_training: None
) -> None:
    from tests.lvlm.tiny_lvlms import BUILDERS

    base = BUILDERS["idefics"](tmp_path_factory.mktemp("idefics")).path
    output = _train(base, tmp_path / "adapter")  # --region attention is the default
    assert "--region attention" in output and "idefics" in output and "--region random" in output

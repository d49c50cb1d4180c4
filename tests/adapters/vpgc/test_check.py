"""``check_adapter_dir``: a broken adapter folder is one line naming the file and what is
wrong, found from the folder alone (no base loads)."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from drum.adapters import CONFIG_NAME, AdapterConfigError, check_adapter_dir
from drum.adapters.vpgc import VPGCLVLM, VPGCConfig
from drum.adapters.vpgc.model import WEIGHTS_NAME
from drum.lvlm.hf import HFLVLM

Base = Callable[[str], HFLVLM]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory, vpgc_base_dir: Callable[[str], Path]):
    """A good adapter of each kind (projector: LLaVA; Q-Former: BLIP-2 with 2 query copies)."""
    made = {}
    for family, config in (("llava", VPGCConfig()), ("blip2", VPGCConfig(query_copies=2))):
        model = VPGCLVLM(HFLVLM(vpgc_base_dir(family)), config)
        made[family] = model.save_adapter(tmp_path_factory.mktemp(f"good-{family}"))
    return made


def _copy(source: Path, tmp_path: Path) -> Path:
    target = tmp_path / "adapter"
    target.mkdir(parents=True)
    for path in source.iterdir():
        (target / path.name).write_bytes(path.read_bytes())
    return target


def _edit_config(directory: Path, **changes: Any) -> None:
    path = directory / CONFIG_NAME
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


def _edit_weights(directory: Path, edit: Callable[[dict[str, torch.Tensor]], None]) -> None:
    path = directory / WEIGHTS_NAME
    state = load_file(str(path))
    edit(state)
    save_file(state, str(path), metadata={"format": "pt"})


@pytest.mark.parametrize("family", ["llava", "blip2"])
def test_a_good_adapter_passes(saved: dict[str, Path], family: str) -> None:
    check_adapter_dir(saved[family])


def _message(directory: Path) -> str:
    with pytest.raises(AdapterConfigError) as raised:
        check_adapter_dir(directory)
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_a_malformed_config(saved: dict[str, Path], tmp_path: Path) -> None:
    directory = _copy(saved["llava"], tmp_path)
    (directory / CONFIG_NAME).write_text('{"adapter_type": "vpgc", "layer": ')
    assert f"{directory / CONFIG_NAME}: not JSON" in _message(directory)
    (directory / CONFIG_NAME).write_text("[1, 2]")
    assert f"{directory / CONFIG_NAME}: " in _message(directory)
    (directory / CONFIG_NAME).write_bytes(b"\xff\xfe{")
    assert str(directory / CONFIG_NAME) in _message(directory)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("layer", "two", "layer must be an integer or null, got 'two'"),
        ("num_heads", 2.0, "num_heads must be an integer, got 2.0"),
        ("query_copies", True, "query_copies must be an integer, got True"),
        ("model_type", 3, "model_type must be a string or null, got 3"),
        ("num_queries", "4", "num_queries must be an integer or null, got '4'"),
        ("layer", None, "not resolved"),
        ("layer", 7, "out of range"),
        ("num_heads", 3, "num_heads (3) must divide hidden_size (16)"),
        ("rank", 8, "unknown VPG-C config fields: ['rank']"),
    ],
)
def test_a_mistyped_or_inconsistent_config(
    saved: dict[str, Path], tmp_path: Path, field: str, value: Any, expected: str
) -> None:
    directory = _copy(saved["llava"], tmp_path)
    _edit_config(directory, **{field: value})
    message = _message(directory)
    assert str(directory / CONFIG_NAME) in message and expected in message


def test_a_missing_weights_file(saved: dict[str, Path], tmp_path: Path) -> None:
    directory = _copy(saved["llava"], tmp_path)
    (directory / WEIGHTS_NAME).unlink()
    assert f"{directory / WEIGHTS_NAME}: no such file" in _message(directory)


def test_wrong_tensor_shapes_or_names(saved: dict[str, Path], tmp_path: Path) -> None:
    directory = _copy(saved["llava"], tmp_path)
    _edit_weights(directory, lambda s: s.update(vpgc_out_proj_weight=torch.zeros(3)))
    assert "vpgc_out_proj_weight" in _message(directory)

    directory = _copy(saved["llava"], tmp_path / "b")

    def widen(state: dict[str, torch.Tensor]) -> None:
        state["vpgc_out_proj.weight"] = torch.zeros(32, 17)

    _edit_weights(directory, widen)
    message = _message(directory)
    assert str(directory / WEIGHTS_NAME) in message
    assert "vpgc_out_proj.weight" in message and "(32, 17)" in message and "(32, 16)" in message


def test_query_copies_set_the_q_former_shapes(saved: dict[str, Path], tmp_path: Path) -> None:
    directory = _copy(saved["blip2"], tmp_path)
    _edit_config(directory, query_copies=1)  # the weights hold two copies
    assert "vpgc_query_tokens" in _message(directory)


def test_a_truncated_or_pickled_weights_file(saved: dict[str, Path], tmp_path: Path) -> None:
    directory = _copy(saved["llava"], tmp_path)
    path = directory / WEIGHTS_NAME
    path.write_bytes(path.read_bytes()[:-100])
    assert f"{path}: not a readable safetensors file" in _message(directory)
    path.write_bytes(pickle.dumps({"vpgc_out_proj.weight": [0.0] * 4}))
    assert f"{path}: not a readable safetensors file" in _message(directory)
    path.write_bytes(b"")
    assert f"{path}: not a readable safetensors file" in _message(directory)


def test_nan_weights(saved: dict[str, Path], tmp_path: Path) -> None:
    directory = _copy(saved["llava"], tmp_path)
    _edit_weights(directory, lambda s: s["vpgc_query_proj.weight"].view(-1)[0].fill_(float("nan")))
    message = _message(directory)
    assert "vpgc_query_proj.weight" in message and "not finite" in message

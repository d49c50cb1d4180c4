"""``drum.adapters.load_adapter``: an adapter directory loads by the ``adapter_type`` its
config records, through ``ADAPTERS``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from drum.adapters import ADAPTERS, CONFIG_NAME, AdapterConfigError, adapter_type, load_adapter


def echo_loader(
    base: Any, directory: str | Path, *, allow_other_base: bool = False
) -> tuple[Any, str]:
    """A stand-in adapter: what it was handed."""
    return base, Path(directory).name


def _adapter_dir(tmp_path: Path, config: Any) -> Path:
    directory = tmp_path / "adapter"
    directory.mkdir()
    (directory / CONFIG_NAME).write_text(json.dumps(config))
    return directory


def test_a_registered_type_loads_through_its_loader(tmp_path: Path) -> None:
    ADAPTERS.register("test-echo", "tests.adapters.test_registry:echo_loader")
    directory = _adapter_dir(tmp_path, {"adapter_type": "test-echo"})
    base = object()
    assert adapter_type(directory) == "test-echo"
    assert load_adapter(base, directory) == (base, "adapter")


def test_vpgc_is_registered() -> None:
    from drum.adapters.vpgc.model import load_adapter as load_vpgc

    assert ADAPTERS.get("vpgc") is load_vpgc


def test_an_unknown_type_is_a_clear_error(tmp_path: Path) -> None:
    directory = _adapter_dir(tmp_path, {"adapter_type": "no-such-adapter"})
    with pytest.raises(AdapterConfigError, match="unknown adapter_type 'no-such-adapter'.*vpgc"):
        load_adapter(object(), directory)


@pytest.mark.parametrize(
    ("config", "message"),
    [(None, "no adapter_config.json"), ({"layer": 2}, "no adapter_type"), ([1], "no adapter_type")],
)
def test_a_directory_without_a_type_is_a_clear_error(
    tmp_path: Path, config: Any, message: str
) -> None:
    directory = tmp_path / "adapter"
    if config is None:
        directory.mkdir()
    else:
        directory = _adapter_dir(tmp_path, config)
    with pytest.raises(AdapterConfigError, match=message):
        load_adapter(object(), directory)

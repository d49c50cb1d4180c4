"""An adapter records the base it was trained on (the base's fingerprint, in its weights'
metadata) and loads onto that base alone, unless the caller says it means another one."""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from drum.adapters import AdapterBaseError, AdapterWarning
from drum.adapters import load_adapter as load_by_type
from drum.adapters.vpgc import VPGCLVLM, VPGCConfig, load_adapter
from drum.adapters.vpgc.model import WEIGHTS_NAME
from drum.lvlm.hf import HFLVLM
from tests.lvlm.tiny_lvlms import build_tiny_llava

Base = Callable[[str], HFLVLM]


@pytest.fixture(scope="module")
def other_llava(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny LLaVA of exactly the shapes of ``vpgc_base_dir("llava")``, other weights."""
    return build_tiny_llava(tmp_path_factory.mktemp("other-llava"), seed=1).path


@pytest.fixture
def adapter(fresh_base: Base, tmp_path: Path) -> Path:
    return VPGCLVLM(fresh_base("llava"), VPGCConfig(num_heads=2)).save_adapter(tmp_path / "a")


def test_an_adapter_refuses_another_base_of_the_same_shapes(
    adapter: Path, other_llava: Path
) -> None:
    other = HFLVLM(other_llava)
    with pytest.raises(AdapterBaseError) as raised:
        load_adapter(other, adapter)
    message = str(raised.value)
    assert other.fingerprint in message and "allow_other_base" in message
    with safe_open(str(adapter / WEIGHTS_NAME), "pt") as weights:
        assert weights.metadata()["base"] in message
    # The registry's loader checks the same way.
    with pytest.raises(AdapterBaseError):
        load_by_type(HFLVLM(other_llava), adapter)


def test_the_override_loads_it_with_a_warning(adapter: Path, other_llava: Path) -> None:
    with pytest.warns(AdapterWarning, match="another base"):
        model = load_adapter(HFLVLM(other_llava), adapter, allow_other_base=True)
    assert isinstance(model, VPGCLVLM)
    with pytest.warns(AdapterWarning):
        load_by_type(HFLVLM(other_llava), adapter, allow_other_base=True)


def test_the_same_base_or_a_copy_of_its_directory_loads_silently(
    adapter: Path, vpgc_base_dir: Callable[[str], Path], tmp_path: Path
) -> None:
    copy = shutil.copytree(vpgc_base_dir("llava"), tmp_path / "copy")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_adapter(HFLVLM(vpgc_base_dir("llava")), adapter)
        load_adapter(HFLVLM(copy), adapter)


def test_an_adapter_without_a_recorded_base_loads_with_one_warning(
    adapter: Path, fresh_base: Base
) -> None:
    path = adapter / WEIGHTS_NAME
    save_file(load_file(str(path)), str(path), metadata={"format": "pt"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_adapter(fresh_base("llava"), adapter)
    assert [w.category for w in caught] == [AdapterWarning]
    assert "records no base" in str(caught[0].message)

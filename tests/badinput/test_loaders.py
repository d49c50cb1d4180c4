"""The loaders name a bad model argument in one line (``ModelPathError``), not a hub error."""

from __future__ import annotations

from pathlib import Path

import pytest

from drum.utils.model_path import ModelPathError


def _loaders() -> list:
    from drum.embed.hf import HFDualEncoder
    from drum.lvlm.hf import HFLVLM

    return [HFDualEncoder, HFLVLM]


@pytest.mark.parametrize("loader", [0, 1], ids=["HFDualEncoder", "HFLVLM"])
def test_a_missing_directory_is_no_such_directory_and_not_a_hub_id(
    loader: int, tmp_path: Path
) -> None:
    with pytest.raises(ModelPathError, match="no such directory, and not a hub id"):
        _loaders()[loader](str(tmp_path / "no-such-model"))


@pytest.mark.parametrize("loader", [0, 1], ids=["HFDualEncoder", "HFLVLM"])
def test_a_directory_that_is_not_a_model(loader: int, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ModelPathError, match="without config.json"):
        _loaders()[loader](tmp_path)


@pytest.mark.parametrize("loader", [0, 1], ids=["HFDualEncoder", "HFLVLM"])
def test_a_hub_id_missing_from_the_offline_cache_is_one_line(
    loader: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelPathError, match="the hub could not provide it") as info:
        _loaders()[loader]("drum-tests/no-such-model")
    assert "\n" not in str(info.value)


def test_a_model_directory_with_broken_files_is_one_line(tmp_path: Path) -> None:
    from drum.embed.hf import HFDualEncoder

    (tmp_path / "config.json").write_text('{"model_type": "no-such-architecture"}')
    with pytest.raises(ModelPathError, match="not a loadable model") as info:
        HFDualEncoder(tmp_path)
    assert "\n" not in str(info.value)

"""``drum.utils.model_path``: a model argument is a model directory or a hub id."""

from __future__ import annotations

from pathlib import Path

import pytest

from drum.utils.model_path import ModelPathError, check_model_path, is_hub_id, model_load_error


def test_a_model_directory_and_hub_ids_pass(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    check_model_path(tmp_path)
    check_model_path(str(tmp_path))
    for hub_id in ("gpt2", "openai/clip-vit-base-patch32", "google/siglip-base-patch16-224"):
        check_model_path(hub_id)


@pytest.mark.parametrize(
    "name",
    ["/no/such/model", "./model", "../model", "~/no-such-model", "runs/a/model", "bad id", "a--b"],
)
def test_a_missing_path_is_no_such_directory_and_not_a_hub_id(name: str) -> None:
    with pytest.raises(ModelPathError, match="no such directory, and not a hub id"):
        check_model_path(name)


def test_a_missing_path_object_is_not_a_hub_id(tmp_path: Path) -> None:
    with pytest.raises(ModelPathError, match="no such directory"):
        check_model_path(Path("models/embedder"))


def test_a_directory_without_config_or_a_file_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelPathError, match="without config.json"):
        check_model_path(tmp_path)
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(ModelPathError, match="a file, not a model directory"):
        check_model_path(tmp_path / "weights.bin")


def test_hub_id_form() -> None:
    assert is_hub_id("org/name.v2") and is_hub_id("name_1")
    assert not is_hub_id("org/") and not is_hub_id("a/b/c") and not is_hub_id("x" * 97)


def test_a_load_error_is_one_line(tmp_path: Path) -> None:
    error = model_load_error("org/name", OSError("We couldn't connect.\nCheck your internet."))
    assert str(error) == (
        "org/name: no such directory, and the hub could not provide it (We couldn't connect.)"
    )
    assert "not a loadable model" in str(model_load_error(tmp_path, ValueError("bad config")))

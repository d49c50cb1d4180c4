"""``drum.lvlm.families``: one complete record per supported ``model_type``, each checked on
its tiny model, and a clear error for any other."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch

from drum.lvlm.families import (
    FAMILIES,
    LVLMFamily,
    UnsupportedFamilyError,
    family_of,
    module_at,
)
from drum.lvlm.hf import HFLVLM
from drum.lvlm.hooks import decoder_layers


def test_every_tiny_family_has_a_complete_record(lvlm: HFLVLM) -> None:
    family = family_of(lvlm.model_type)
    assert family is lvlm.family and family.model_type == lvlm.model_type
    for field in dataclasses.fields(LVLMFamily):
        assert getattr(family, field.name) is not None, field.name
    config = lvlm.model.config
    assert decoder_layers(lvlm.model) is module_at(lvlm.model, family.decoder_layers)
    assert isinstance(module_at(lvlm.model, family.patch_features), torch.nn.Module)
    assert family.vision_width(config) > 0 and family.token_merge(config) >= 1


def test_the_tiny_models_cover_every_record(build: Any) -> None:
    from tests.lvlm.tiny_lvlms import BUILDERS

    assert sorted(FAMILIES) == sorted(build(name).model_type for name in BUILDERS)


def test_an_unknown_model_type_names_the_supported_ones() -> None:
    with pytest.raises(UnsupportedFamilyError, match="'gpt2' is not a supported") as info:
        family_of("gpt2")
    assert all(model_type in str(info.value) for model_type in FAMILIES)


def test_hflvlm_refuses_an_unsupported_family_before_loading_weights(tmp_path: Any) -> None:
    from drum.utils.model_path import ModelPathError

    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    with pytest.raises(ModelPathError, match="not a supported LVLM family; supported: blip-2"):
        HFLVLM(tmp_path)


def test_records_are_validated() -> None:
    llava = FAMILIES["llava"]
    with pytest.raises(ValueError, match="processor must be one of"):
        dataclasses.replace(llava, processor="mine")
    with pytest.raises(ValueError, match="patch_features_at must be one of"):
        dataclasses.replace(llava, patch_features_at="middle")

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
    served_family,
)
from drum.lvlm.hf import HFLVLM
from drum.lvlm.hooks import decoder_layers

# Visual tokens that are no block of patches: anyres tiles with newline tokens, perceiver
# latents.
NO_PATCH_GRID = ("llava_onevision", "idefics2")


def test_every_tiny_family_has_a_complete_record(lvlm: HFLVLM) -> None:
    family = family_of(lvlm.model_type)
    assert family is lvlm.family and family.model_type == lvlm.model_type
    for field in dataclasses.fields(LVLMFamily):
        assert getattr(family, field.name) is not None, field.name
    config = lvlm.model.config
    assert decoder_layers(lvlm.model) is module_at(lvlm.model, family.decoder_layers)
    assert isinstance(module_at(lvlm.model, family.patch_features), torch.nn.Module)
    assert isinstance(module_at(lvlm.model, family.projector), torch.nn.Module)
    assert family.vision_width(config) > 0
    if lvlm.model_type in NO_PATCH_GRID:  # the attention reader refuses them, saying why
        with pytest.raises(ValueError, match="map onto no patch grid"):
            family.token_merge(config)
    else:
        assert family.token_merge(config) >= 1


def test_the_tiny_models_cover_every_record(build: Any) -> None:
    from tests.lvlm.tiny_lvlms import BUILDERS

    assert sorted(FAMILIES) == sorted(build(name).model_type for name in BUILDERS)


def test_an_unknown_model_type_names_the_supported_ones() -> None:
    with pytest.raises(UnsupportedFamilyError, match="'gpt2' is not a supported") as info:
        family_of("gpt2")
    assert all(model_type in str(info.value) for model_type in FAMILIES)


def test_a_model_type_without_a_record_is_served_as_before(build: Any) -> None:
    # Scoring, generation and hooks take any LLaVA-like checkpoint (AutoProcessor, decoder
    # layers at the usual paths); only what needs the record's facts refuses it.
    from drum.adapters.vpgc.model import base_fields

    family = served_family("llava_next")
    assert not family.recorded and family.processor == "auto" and not family.feature_cache
    assert served_family("llava") is FAMILIES["llava"]
    with pytest.raises(UnsupportedFamilyError, match="'llava_next' is not a supported"):
        family.vision_width(None)

    lvlm = HFLVLM(build("llava").path)
    layers = decoder_layers(lvlm.model)
    lvlm.model.config.model_type = "llava_next"
    try:
        assert decoder_layers(lvlm.model) is layers
        lvlm.family = served_family("llava_next")
        with pytest.raises(UnsupportedFamilyError, match="'llava_next' is not a supported"):
            base_fields(lvlm)
    finally:
        lvlm.model.config.model_type = "llava"
        lvlm.family = FAMILIES["llava"]


def test_records_are_validated() -> None:
    llava = FAMILIES["llava"]
    with pytest.raises(ValueError, match="processor must be one of"):
        dataclasses.replace(llava, processor="mine")
    with pytest.raises(ValueError, match="patch_features_at must be one of"):
        dataclasses.replace(llava, patch_features_at="middle")
    with pytest.raises(ValueError, match="token_types must be one of"):
        dataclasses.replace(llava, token_types="types")

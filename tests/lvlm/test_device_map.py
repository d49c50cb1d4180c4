"""``HFLVLM(device_map=...)``: ``transformers`` (through accelerate) places the layers, the
model is not moved afterwards, and inputs go where the input embeddings are."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import transformers

from drum.lvlm.hf import HFLVLM


def test_device_map_reaches_from_pretrained_and_places_the_model(
    tiny_llava_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = transformers.AutoModelForImageTextToText.from_pretrained
    seen: list[Any] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("device_map"))
        return real(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForImageTextToText, "from_pretrained", spy)
    placed = HFLVLM(tiny_llava_dir, device_map="auto")  # no GPU here: all on the CPU
    assert seen == ["auto"]
    assert placed.device == placed.model.get_input_embeddings().weight.device
    assert placed.device == torch.device("cpu")
    plain = HFLVLM(tiny_llava_dir)
    assert seen == ["auto", None]
    for name, tensor in plain.model.state_dict().items():
        assert torch.equal(tensor, placed.model.state_dict()[name]), name

"""VPG-C refuses the cross-attention families (IDEFICS, Mllama; ``tests/lvlm/tiny_families_b.py``)
by name. InternVL and Mistral3 run ``test_vpgc``'s family checks (Mistral3's images hold a
row break inside their span, which gets no residual: the residual test's mask excludes it)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from drum.adapters.vpgc import VPGCLVLM
from drum.adapters.vpgc.model import config_fields
from drum.lvlm.attention import patch_grid_attention
from drum.lvlm.families import UnsupportedFamilyError
from drum.lvlm.hf import HFLVLM
from drum.lvlm.prompt import ICLPrompt
from tests.adapters.vpgc.test_vpgc import CONFIG

Prompts = tuple[list[ICLPrompt], list[str]]
Base = Callable[[str], HFLVLM]
CROSS_ATTENTION = ("idefics", "mllama")


@pytest.mark.parametrize("family", CROSS_ATTENTION)
def test_cross_attention_families_are_refused_by_name(
    vpgc_base_dir: Callable[[str], Path], family: str
) -> None:
    # Their images never become tokens of the sequence: there is nowhere to add VPG-C's
    # residual visual prompts (README, "LVLM families").
    from transformers import AutoConfig

    base = HFLVLM(vpgc_base_dir(family))
    message = f"VPG-C does not support model_type '{base.model_type}'.*cross-attention"
    with pytest.raises(UnsupportedFamilyError, match=message) as raised:
        VPGCLVLM(base, CONFIG)
    supported = str(raised.value).split("supported: ")[-1].split(", ")
    assert "llava" in supported and base.model_type not in supported
    with pytest.raises(UnsupportedFamilyError, match=message):
        config_fields(AutoConfig.from_pretrained(vpgc_base_dir(family)))
    with pytest.raises(UnsupportedFamilyError, match="the attention reader does not support"):
        patch_grid_attention(base, [], grid=2)

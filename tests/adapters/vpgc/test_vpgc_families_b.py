"""The families of ``tests/lvlm/tiny_families_b.py``: InternVL and Mistral3 run ``test_vpgc``'s
family checks (Mistral3's images hold a row break inside their span, which gets no residual:
the residual test's mask excludes it); IDEFICS and Mllama run VPG-C on their image states
(``test_vpgc_cross_attention``), while the attention reader still refuses them by name."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from drum.adapters.vpgc.model import config_fields
from drum.lvlm.attention import patch_grid_attention
from drum.lvlm.families import UnsupportedFamilyError
from drum.lvlm.hf import HFLVLM

CROSS_ATTENTION = ("idefics", "mllama")


@pytest.mark.parametrize("family", CROSS_ATTENTION)
def test_cross_attention_families_resolve_for_vpgc_but_not_for_the_attention_reader(
    vpgc_base_dir: Callable[[str], Path], family: str
) -> None:
    # Their images never become tokens of the sequence: VPG-C's residual joins the image
    # states the cross-attention layers read; the attention reader has no visual tokens whose
    # attention it could read (README, "LVLM families").
    from transformers import AutoConfig

    fields = config_fields(AutoConfig.from_pretrained(vpgc_base_dir(family)))
    assert fields["base_kind"] == "cross_attention" and fields["state_size"] == 32
    base = HFLVLM(vpgc_base_dir(family))
    message = f"the attention reader does not support model_type '{base.model_type}'"
    with pytest.raises(UnsupportedFamilyError, match=message) as raised:
        patch_grid_attention(base, [], grid=2)
    supported = str(raised.value).split("supported: ")[-1].split(", ")
    assert "llava" in supported and base.model_type not in supported

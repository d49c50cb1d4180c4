"""VPG-C on the tiny InternVL and Mistral3 bases (``tests/lvlm/tiny_families_b.py``): a fresh
adapter is exactly its base; a perturbed one moves every image's visual tokens and nothing
else, batched as one at a time (Mistral3's images hold a row break inside their span, which
gets no residual). VPG-C refuses the cross-attention families (IDEFICS, Mllama) by name."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from drum.adapters.vpgc import VPGCLVLM
from drum.adapters.vpgc.model import config_fields
from drum.lvlm.attention import patch_grid_attention
from drum.lvlm.families import UnsupportedFamilyError
from drum.lvlm.hf import HFLVLM
from drum.lvlm.hooks import decoder_layers
from drum.lvlm.prompt import ICLPrompt
from tests.adapters.vpgc.test_vpgc import CONFIG, _perturb, _sums

Prompts = tuple[list[ICLPrompt], list[str]]
Base = Callable[[str], HFLVLM]
FAMILIES = ("internvl", "mistral3")
CROSS_ATTENTION = ("idefics", "mllama")


@pytest.mark.parametrize("family", FAMILIES)
def test_a_fresh_adapter_is_exactly_its_base(
    fresh_base: Base, vpgc_prompts: Prompts, family: str
) -> None:
    base = fresh_base(family)
    prompts, answers = vpgc_prompts
    scores = _sums(base.score(prompts, answers))
    replies = base.generate(prompts, max_new_tokens=4)
    model = VPGCLVLM(base, CONFIG)
    assert torch.allclose(_sums(model.score(prompts, answers)), scores, rtol=0, atol=1e-6)
    assert model.generate(prompts, max_new_tokens=4) == replies


@pytest.mark.parametrize("family", FAMILIES)
def test_a_perturbed_adapter_moves_exactly_the_visual_tokens(
    fresh_base: Base, vpgc_prompts: Prompts, family: str
) -> None:
    base = fresh_base(family)
    prompts, answers = vpgc_prompts[0][:3], vpgc_prompts[1][:3]  # 2, 3 and 3 images
    model = VPGCLVLM(base, CONFIG)
    _perturb(model)
    layer = decoder_layers(base.model)[model.config.layer]
    seen: list[torch.Tensor] = []

    def record(module: torch.nn.Module, args: Any, kwargs: Any) -> None:
        seen.append((args[0] if args else kwargs["hidden_states"]).detach().clone())

    handle = layer.register_forward_pre_hook(record, with_kwargs=True)
    try:
        scores = _sums(base.score(prompts, answers))
        changed = _sums(model.score(prompts, answers))
    finally:
        handle.remove()
    without, with_adapter = seen
    answer_ids = [base._answer_ids(answer) for answer in answers]
    visual = base.score_inputs(prompts, answer_ids, positions=True).visual
    assert visual is not None and [len(s) for s in visual.spans] == [2, 3, 3]
    moved = (with_adapter - without).abs().amax(dim=-1) > 1e-6
    assert torch.equal(moved, visual.mask)
    assert all(abs(c - s) > 1e-5 for c, s in zip(changed, scores, strict=True))
    alone = torch.cat([_sums(model.score([p], [a])) for p, a in zip(prompts, answers, strict=True)])
    assert torch.allclose(alone, changed, rtol=0, atol=1e-4)


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

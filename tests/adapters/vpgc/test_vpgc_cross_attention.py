"""VPG-C on the cross-attention bases (IDEFICS v1, Mllama; ``drum.adapters.vpgc.cross_attention``):
the residual reaches only the image states of the cross-attention layers after the guidance
layer, at every real image (Mllama: every real tile) and nowhere else; replies act through
every decode step as a by-hand greedy decode does; batched replies are the alone ones; the
adapter saves, checks and loads onto its own base alone; a few steps of synthetic training
lower its loss; the projector and LoRA baselines train and save a model ``HFLVLM`` loads.
``test_vpgc`` runs its family checks on both too."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from drum.adapters import AdapterBaseError, check_adapter_dir
from drum.adapters.vpgc import VPGCLVLM, VPGCConfig, VPGCConfigError, load_adapter
from drum.adapters.vpgc.cross_attention import CrossAttentionVPGC
from drum.adapters.vpgc.train import VPGCTrainConfig, lora_target_names
from drum.builtin.vpgc.sources import VPGCDataConfig, train_on_synthetic
from drum.data import read_examples
from drum.demon.format import read_demon_task
from drum.demon.prompt import demon_prompt
from drum.lvlm.hf import HFLVLM
from drum.lvlm.hooks import decoder_layers
from drum.lvlm.prompt import ICLPrompt, ImagePart, TextPart, Turn
from tests.lvlm import tiny_lvlms
from tests.lvlm.tiny_families_b import build_tiny_mllama

Prompts = tuple[list[ICLPrompt], list[str]]
CONFIG = VPGCConfig(num_heads=2, seed=3)
FAMILIES = ("idefics", "mllama")


@pytest.fixture(scope="module")
def deep_mllama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Mllama with cross-attention layers on both sides of VPG-C's default layer
    (4 decoder layers, cross-attention at 1 and 3; ``layer`` = 2)."""
    path = tmp_path_factory.mktemp("deep-mllama")
    return build_tiny_mllama(path, num_layers=4, cross_attention_layers=(1, 3)).path


@pytest.fixture(scope="module")
def base_dir(vpgc_base_dir: Callable[[str], Path], deep_mllama: Path) -> Callable[[str], Path]:
    """IDEFICS (a gated cross-attention block before each of its 2 layers) and the deep
    Mllama: both have cross-attention before and after VPG-C's layer."""
    return lambda family: deep_mllama if family == "mllama" else vpgc_base_dir(family)


@pytest.fixture(scope="module")
def two_images(tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Prompts:
    """Two prompts of 2 images each; the second's first image is 64 x 32 (two Mllama tiles,
    the other images one of its two)."""
    pool = read_examples(tiny_world / "vqa" / "pool.jsonl")
    wide = tmp_path_factory.mktemp("wide") / "wide.png"
    Image.open(pool[0].image).convert("RGB").resize((64, 32)).save(wide)
    prompts = [
        ICLPrompt(
            (),
            Turn(
                (
                    TextPart("one"),
                    ImagePart(a),
                    TextPart("two"),
                    ImagePart(b),
                    TextPart(pool[i].text),
                )
            ),
        )  # fmt: skip
        for i, (a, b) in enumerate([(pool[0].image, pool[1].image), (wide, pool[2].image)])
    ]
    return prompts, ["red blue", pool[1].answer]


def _perturb(model: VPGCLVLM, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.adapter.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator))


def _record(base: HFLVLM, run: Callable[[], Any], layer: int) -> tuple[list, list]:
    """What ``run()`` gives each cross-attention module's key projection (the image states
    after every hook) and decoder layer ``layer - 1``'s output, pass by pass."""
    states: list[torch.Tensor] = []
    outputs: list[torch.Tensor] = []
    handles = [
        module.k_proj.register_forward_pre_hook(
            lambda m, args: states.append(args[0].detach().clone())
        )
        for _, module in base.family.cross_attention_modules(base.model)
    ]
    handles.append(
        decoder_layers(base.model)[layer - 1].register_forward_hook(
            lambda m, args, out: outputs.append(
                (out[0] if isinstance(out, tuple) else out).detach().clone()
            )
        )
    )
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    per_pass = len(states) // len(outputs)
    return [states[i : i + per_pass] for i in range(0, len(states), per_pass)], outputs


@pytest.mark.parametrize("family", FAMILIES)
def test_the_residual_joins_only_the_states_after_the_guidance_layer(
    base_dir: Callable[[str], Path], two_images: Prompts, family: str
) -> None:
    base = HFLVLM(base_dir(family))
    prompts, answers = two_images
    model = VPGCLVLM(base, CONFIG)
    _perturb(model)
    k = model.config.layer
    indices = [index for index, _ in base.family.cross_attention_modules(base.model)]
    assert min(indices) < k <= max(indices)  # modules on both sides of the layer
    # One prompt a pass: the second pass's early modules must not see the first's residual.
    plain, plain_outputs = _record(base, lambda: base.score(prompts, answers, 1), k)
    steered, steered_outputs = _record(base, lambda: model.score(prompts, answers, 1), k)
    assert len(plain) == len(steered) == 2
    for row, prompt in enumerate(prompts):
        # Everything up to the guidance layer's output is the base's.
        assert torch.equal(steered_outputs[row], plain_outputs[row])
        extra = base.score_inputs([prompt], [base._answer_ids(answers[row])]).extra
        # Each slot's real tiles (IDEFICS: one "tile", both slots real images).
        tiles = extra.get("aspect_ratio_mask", torch.ones(1, 2, 1, dtype=torch.long)).bool()
        if family == "mllama":  # the wide image has two tiles, the others one of two
            first = [[True, False], [True, False]] if row == 0 else [[True, True], [True, False]]
            assert tiles.tolist() == [first]
        for index, before, after in zip(indices, plain[row], steered[row], strict=True):
            if index < k:
                assert torch.equal(after, before), index
                continue
            moved = (after - before).abs().amax(dim=-1).reshape(*tiles.shape, -1)
            # At every real tile's states of every image, nowhere else (not padding tiles).
            assert torch.equal(moved > 1e-6, tiles[..., None].expand_as(moved)), index


def _by_hand(model: VPGCLVLM, prompt: ICLPrompt, steps: int) -> str:
    """Greedy decoding by full forwards (the adapter's guidance at the prompt's last token)."""
    base = model.base
    filler = base._answer_ids("one")[0]  # the last kept logit predicts it: it sees nothing
    tokens: list[int] = []
    with model.active(), torch.no_grad():
        for _ in range(steps):
            inputs = base.score_inputs([prompt], [[*tokens, filler]])
            logits = base.forward(
                inputs.input_ids, inputs.attention_mask, inputs.visual, **inputs.extra
            ).logits
            tokens.append(int(logits[0, -1].argmax()))
            if tokens[-1] == base.tokenizer.eos_token_id:
                break
    return base.tokenizer.decode(tokens, skip_special_tokens=True).strip()


@pytest.mark.parametrize("family", FAMILIES)
def test_replies_act_through_every_decode_step(
    base_dir: Callable[[str], Path], vpgc_prompts: Prompts, family: str
) -> None:
    base = HFLVLM(base_dir(family))
    prompts = [p for p in vpgc_prompts[0] if p.images]  # 2, 3, 3 and 1 images
    replies = base.generate(prompts, max_new_tokens=4)
    model = VPGCLVLM(base, CONFIG)
    _perturb(model)
    steered = model.generate(prompts, max_new_tokens=4)
    assert steered != replies
    # IDEFICS recomputes its cross-attention keys at every step (the residual is added again),
    # Mllama reads them from the cache: either way, as full forwards decode.
    assert steered == [_by_hand(model, prompt, 4) for prompt in prompts]
    # Batched as one at a time.
    assert steered == [model.generate([prompt], max_new_tokens=4)[0] for prompt in prompts]


@pytest.mark.parametrize("family", FAMILIES)
def test_save_check_and_load_onto_its_own_base(
    vpgc_base_dir: Callable[[str], Path], vpgc_prompts: Prompts, tmp_path: Path, family: str
) -> None:
    prompts, answers = vpgc_prompts
    model = VPGCLVLM(HFLVLM(vpgc_base_dir(family)), CONFIG)
    _perturb(model)
    scores = [s.sum for s in model.score(prompts, answers)]
    replies = model.generate(prompts[:3], max_new_tokens=4)
    saved = model.save_adapter(tmp_path / "adapter")
    check_adapter_dir(saved)  # tensor names and shapes from the config alone
    written = json.loads((saved / "adapter_config.json").read_text())
    assert written["base_kind"] == "cross_attention" and written["state_size"] == 32

    loaded = load_adapter(HFLVLM(vpgc_base_dir(family)), saved)
    assert loaded.config == model.config and loaded.fingerprint == model.fingerprint
    assert [s.sum for s in loaded.score(prompts, answers)] == scores
    assert loaded.generate(prompts[:3], max_new_tokens=4) == replies
    # Another base of the same shapes is refused by its fingerprint.
    other = tiny_lvlms.BUILDERS[family](tmp_path / "other", seed=1).path
    with pytest.raises(AdapterBaseError, match="allow_other_base"):
        load_adapter(HFLVLM(other), saved)
    # Nor does it fit a projector base.
    with pytest.raises(VPGCConfigError, match="made for"):
        load_adapter(HFLVLM(vpgc_base_dir("llava")), saved)


def test_a_layer_after_the_last_cross_attention_layer_is_a_clear_error(
    vpgc_base_dir: Callable[[str], Path],
) -> None:
    # The default tiny Mllama: 3 decoder layers, cross-attention at layer 1 alone.
    with pytest.raises(VPGCConfigError, match=r"no cross-attention layer at or after it.*\[1\]"):
        VPGCLVLM(HFLVLM(vpgc_base_dir("mllama")), VPGCConfig(layer=2, num_heads=2))


def test_the_state_width_is_the_cross_attention_bases_own() -> None:
    fields = dict(model_type="idefics", base_kind="cross_attention", num_layers=2,
                  llm_hidden_size=48, vision_hidden_size=32, state_size=24)  # fmt: skip
    config = VPGCConfig(num_heads=2).resolve(**fields)
    module = CrossAttentionVPGC(config)
    assert module.vpgc_query_proj.in_features == 24 and module.vpgc_out_proj.out_features == 24
    assert module.vpgc_guidance_proj.in_features == 48 and module.vpgc_key_proj.in_features == 32
    with pytest.raises(VPGCConfigError, match="state_size"):
        VPGCConfig(num_heads=2).resolve(**{**fields, "base_kind": "projector"})
    # Configs of the other bases never write the field (their files stay as they were).
    projector = VPGCConfig().resolve(**{**fields, "base_kind": "projector", "state_size": None})
    assert "state_size" not in projector.to_dict()


@pytest.mark.parametrize("family", FAMILIES)
def test_synthetic_training_lowers_the_loss(
    vpgc_base_dir: Callable[[str], Path], tmp_path: Path, family: str
) -> None:
    base_path = vpgc_base_dir(family)
    # Random regions: the attention reader that picks the least attended one refuses these
    # bases (no visual tokens to read attention to).
    train = VPGCTrainConfig(adapter=VPGCConfig(num_heads=2), lr=1e-2, batch_size=4,
                            max_steps=20, warmup=2, checkpoint_every=10, log_every=5)  # fmt: skip
    data = VPGCDataConfig(source="world", n_train=4, region="random")
    out = train_on_synthetic(base_path, tmp_path / "adapter", train, data,
                             data_dir=tmp_path / "data", progress=False)  # fmt: skip
    tasks = [read_demon_task(p) for p in sorted((tmp_path / "data" / "train").iterdir())]
    samples = [(demon_prompt(t, s), str(s.response)) for t in tasks for s in t.samples]
    prompts, answers = [p for p, _ in samples], [a for _, a in samples]
    with torch.no_grad():
        fresh = VPGCLVLM(HFLVLM(base_path), VPGCConfig(num_heads=2)).loss(prompts, answers, True)
        trained = load_adapter(HFLVLM(base_path), out).loss(prompts, answers, True)
    assert trained < fresh - 0.05


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("method", ["projector", "lora"])
def test_the_baselines_write_a_model_hflvlm_loads(
    base_dir: Callable[[str], Path], vpgc_prompts: Prompts, tmp_path: Path, family: str, method: str
) -> None:
    base_path = base_dir(family)
    # LoRA on the self-attention of every decoder layer (Mllama's cross-attention layers have
    # none): its targets are exactly those.
    model = HFLVLM(base_path).model
    names = lora_target_names(model)
    layers = [layer for layer in decoder_layers(model) if hasattr(layer, "self_attn")]
    assert len(names) == 2 * len(layers) and not any("cross_attn" in n for n in names)
    train = VPGCTrainConfig(method=method, adapter=VPGCConfig(num_heads=2), lr=1e-2,
                            batch_size=2, max_steps=2, warmup=1, checkpoint_every=2,
                            log_every=1)  # fmt: skip
    data = VPGCDataConfig(source="world", n_train=2, region="random")
    out = train_on_synthetic(base_path, tmp_path / method, train, data,
                             data_dir=tmp_path / "data", progress=False)  # fmt: skip
    prompts, answers = vpgc_prompts
    before = [s.sum for s in HFLVLM(base_path).score(prompts, answers)]
    after = [s.sum for s in HFLVLM(out).score(prompts, answers)]  # the processor saved too
    assert after != before

"""The three stages on a tiny recipe: what each stage trains and leaves alone, the training
forward is exactly what HFLVLM computes, the card's gates and diagnostics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

from drum.builtin.blip2.encode import (
    PoolFeatures,
    QuestionEncoder,
    batch_forward,
    demon_sample,
    demon_task,
)
from drum.builtin.blip2.questions import FORMS, OBJECTS, ScenePool
from drum.builtin.blip2.scenes import render
from drum.builtin.blip2.train import load_card, train_builtin_blip2
from drum.demon.prompt import demon_prompt
from drum.lvlm.hf import HFLVLM
from tests.builtin.blip2.conftest import TINY


def _weights(directory: Path) -> dict[str, torch.Tensor]:
    return load_file(str(directory / "model.safetensors"))


def _changed(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> set[str]:
    assert a.keys() == b.keys()
    return {name for name in a if not torch.equal(a[name], b[name])}


def test_each_stage_trains_only_its_part(tiny_blip2_run: Path) -> None:
    vision, a, b = (_weights(tiny_blip2_run / s) for s in ("vision", "stage_a", "stage_b"))
    changed_in_a = _changed(vision, a)
    assert changed_in_a and not any(n.startswith("vision_model.") for n in changed_in_a)
    assert any(n.startswith("qformer.") for n in changed_in_a)
    assert any(n.startswith("language_model.") for n in changed_in_a)
    # Stage B: new query tokens, everything else exactly stage A's.
    assert _changed(a, b) == {"query_tokens"}


def test_the_training_forward_is_hflvlms_loss(tiny_blip2_run: Path, tmp_path: Path) -> None:
    lvlm = HFLVLM(tiny_blip2_run / "stage_a")
    model, tokenizer = lvlm.model, lvlm.tokenizer
    pool, rng = ScenePool(5, 30), np.random.default_rng(0)
    questions = [FORMS[name].form(rng, pool, OBJECTS) for name in FORMS for _ in range(2)]
    keys = sorted({k for q in questions for k in q.images}, key=str)
    features = PoolFeatures(model, lvlm.processor.image_processor, pool, keys)
    encoder = QuestionEncoder(tokenizer, model.config.num_query_tokens)
    batch = [encoder.encode(q, [features.rows[k] for k in q.images]) for q in questions]
    _, loss, _, _ = batch_forward(model, features.features, batch, tokenizer.pad_token_id)
    samples = []
    for i, question in enumerate(questions):
        paths = []
        for j, key in enumerate(question.images):
            path = tmp_path / f"{i}_{j}.png"
            Image.fromarray(render(pool.scene(key))[0]).save(path)
            paths.append(path)
        samples.append(demon_sample(question, paths, i))
    task = demon_task("t", "test", samples)
    prompts = [demon_prompt(task, s) for s in task.samples]
    expected = lvlm.answer_loss(prompts, [q.response for q in questions], add_eos=True)
    assert torch.allclose(loss, expected, rtol=0, atol=1e-5)


def test_the_card_holds_gates_and_diagnostics_and_a_rerun_reuses_it(tiny_blip2_run: Path) -> None:
    card = load_card(tiny_blip2_run)
    names = [gate["name"] for gate in card["gates"]]
    assert "detail in the patches" in names and "stage B: small colour near chance" in names
    assert card["passed"] == all(gate["passed"] for gate in card["gates"])
    for stage in ("stage_a", "stage_b"):
        diagnostics = card["diagnostics"][stage]
        assert set(diagnostics["form_accuracy"]) == set(FORMS)
        probe = diagnostics["detail_probe"]
        assert 0 <= probe["from_queries"] <= 1 and 0 <= probe["from_patches"] <= 1
        share = diagnostics["attention_share"]
        assert 0 < share["area"] < 0.2 and 0 <= share["attention"] <= 1
    before = (tiny_blip2_run / "stage_b" / "model.safetensors").stat().st_mtime_ns
    assert train_builtin_blip2(tiny_blip2_run, TINY, progress=False)["digests"] == card["digests"]
    assert (tiny_blip2_run / "stage_b" / "model.safetensors").stat().st_mtime_ns == before


def test_the_invariance_loss_is_zero_exactly_when_the_small_object_does_not_reach_the_queries(
    tiny_blip2_run: Path,
) -> None:
    from drum.builtin.blip2.train import invariance_loss

    lvlm = HFLVLM(tiny_blip2_run / "stage_a")  # before stage B made its queries invariant
    features = PoolFeatures(lvlm.model, lvlm.processor.image_processor, ScenePool(3, 10))
    loss = invariance_loss(lvlm.model, features, np.random.default_rng(0), TINY)
    assert loss > 0
    for key, row in features.rows.items():  # every twin's features made its base's
        features.features[row] = features.features[features.rows[(key[0], None, None)]]
    assert invariance_loss(lvlm.model, features, np.random.default_rng(0), TINY) == 0

"""Synthetic discriminative training (``drum.builtin.vpgc.data`` / ``.train``) and its CLI,
on a tiny built-in base."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from drum.adapters.vpgc import VPGCLVLM, VPGCConfig, load_adapter
from drum.adapters.vpgc.train import VPGCTrainConfig
from drum.builtin.demon.lvlm import base_vocabulary
from drum.builtin.demon.scenes import LETTERS, VALUES, word
from drum.builtin.lvlm.model import BuiltinLVLMArchitecture, build_builtin_lvlm
from drum.builtin.vpgc.data import (
    SYNTHETIC_INSTRUCTIONS,
    SYNTHETIC_TASKS,
    WHAT_DIFFERS_ANSWERS,
    SyntheticVPGCConfig,
    least_attended_region,
    make_synthetic_vpgc,
    patch_cells,
)
from drum.builtin.vpgc.sources import VPGCDataConfig, train_on_synthetic
from drum.builtin.world.language import PLURALS
from drum.cli.app import app
from drum.demon.format import read_demon_task
from drum.demon.prompt import demon_prompt
from drum.lvlm.hf import HFLVLM
from drum.utils.fingerprint import directory_digest

runner = CliRunner()


def _synthetic_words() -> set[str]:
    """Every word the synthetic tasks can write (contexts, instructions, answers, choices),
    lowercased as the word tokenizer reads them."""
    words: set[str] = set()
    for texts in SYNTHETIC_INSTRUCTIONS.values():
        for text in texts:
            words.update(text.split())
    for _, template in SYNTHETIC_TASKS.values():
        words.update(w for w in template.split() if not w.startswith("{"))
    for answer in WHAT_DIFFERS_ANSWERS.values():
        words.update(answer.split())
    values = ["objects", "a", "same", "different", "image", *LETTERS]
    values += [word("count", c) for c in VALUES["count"]]
    values += [str(v) for a in ("colour", "shape", "size") for v in VALUES[a]]
    values += list(PLURALS.values())
    words.update(values)
    return {w.lower() for w in words}


def _build_tiny(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    model, processor = build_builtin_lvlm(
        BuiltinLVLMArchitecture(hidden=32, layers=2, heads=2, intermediate=64),
        Path("drum/assets/builtin/embedder"),
        base_vocabulary(),
    )
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build_tiny(tmp_path_factory.mktemp("tiny-demon-base"), 0)


@pytest.fixture(scope="module")
def tiny_data(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic") / "data"
    make_synthetic_vpgc(root, SyntheticVPGCConfig(n_train=6, n_test=2), HFLVLM(tiny_base))
    return root


def _words(text: str) -> list[str]:
    text = re.sub(r"\{image#\d+\}", " ", text).replace(":", " : ")
    return text.lower().split()


def test_every_word_is_in_the_base_vocabulary(tiny_data: Path) -> None:
    vocabulary = set(base_vocabulary())
    assert _synthetic_words() <= vocabulary
    for folder in sorted((tiny_data / "train").iterdir()):
        task = read_demon_task(folder)
        for sample in task.samples:
            texts = [task.instructions[sample.instruction_id], sample.context, sample.response]
            texts += list(sample.choices or ())
            for text in texts:
                assert set(_words(text)) <= vocabulary, text
    assert sorted(p.name for p in (tiny_data / "test").iterdir()) == sorted(SYNTHETIC_TASKS)


def test_no_benchmark_answer_form() -> None:
    root_answers = {"to"}  # SpotTheEdit / MovedObject answer "<a> to <b>"
    assert not root_answers & _synthetic_words()


def test_data_is_deterministic_balanced_and_local(tmp_path: Path) -> None:
    config = SyntheticVPGCConfig(n_train=60, region="random", seed=3)
    make_synthetic_vpgc(tmp_path / "a", config)
    make_synthetic_vpgc(tmp_path / "b", config)
    assert directory_digest(tmp_path / "a") == directory_digest(tmp_path / "b")
    same = read_demon_task(tmp_path / "a" / "train" / "SameOrNot")
    counts = Counter(s.response for s in same.samples)
    assert 0.35 <= counts["same"] / 60 <= 0.65
    odd = read_demon_task(tmp_path / "a" / "train" / "OddOneOut")
    assert {len(s.images) for s in odd.samples} == {3, 4}
    # Edited and unedited images differ only inside the edited cells.
    task = read_demon_task(tmp_path / "a" / "train" / "WhatDiffers")
    task_dir = tmp_path / "a" / "train" / "WhatDiffers"
    metas = [json.loads(line) for line in (task_dir / "meta.jsonl").read_text().splitlines()]
    from PIL import Image

    for sample, meta in zip(task.samples, metas, strict=True):
        a, b = (np.asarray(Image.open(p), dtype=np.int16) for p in sample.images)
        diff = np.abs(a - b).sum(-1) > 0
        edit = meta["edit"]
        cells = [edit[k] for k in ("cell", "from", "to") if isinstance(edit.get(k), int)]
        allowed = np.zeros_like(diff)
        for cell in cells:
            row, col = divmod(cell, 3)
            allowed[int(row * 32 / 3) : int(np.ceil((row + 1) * 32 / 3)),
                    int(col * 32 / 3) : int(np.ceil((col + 1) * 32 / 3))] = True  # fmt: skip
        assert diff.any() and not (diff & ~allowed).any(), meta


def test_patch_cells_cover_the_grid() -> None:
    assert patch_cells(0) == (0, 1, 3, 4)
    assert patch_cells(3) == (4, 5, 7, 8)
    assert set().union(*(patch_cells(p) for p in range(4))) == set(range(9))


@pytest.mark.parametrize("forced", [0, 1, 2, 3])
def test_least_attended_region_picks_the_patch_nobody_attends(
    tiny_base: Path, tiny_data: Path, forced: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    lvlm = HFLVLM(tiny_base)
    task = read_demon_task(tiny_data / "train" / "WhatDiffers")
    prompt = demon_prompt(task, task.samples[0])
    original = lvlm.score_inputs

    def masked(*args, **kwargs):  # the forced patch token is masked: attention 0 to it
        inputs = original(*args, **kwargs)
        start, _ = inputs.visual.spans[0][0]
        inputs.attention_mask[0, start + 1 + forced] = 0
        return inputs

    monkeypatch.setattr(lvlm, "score_inputs", masked)
    assert least_attended_region(lvlm, prompt) == forced


def _config(region: str = "attention", **changes) -> tuple[VPGCTrainConfig, VPGCDataConfig]:
    fields = dict(adapter=VPGCConfig(num_heads=2), lr=1e-2, batch_size=4, max_steps=12,
                  warmup=2, checkpoint_every=4, log_every=4)  # fmt: skip
    return VPGCTrainConfig(**{**fields, **changes}), VPGCDataConfig(n_train=6, region=region)


@pytest.mark.slow
def test_training_lowers_the_loss_changes_only_the_adapter_and_resumes(
    tiny_base: Path, tiny_data: Path, tmp_path: Path
) -> None:
    before = directory_digest(tiny_base)
    config = _config()
    straight = train_on_synthetic(tiny_base, tmp_path / "straight", *config, data_dir=tiny_data,
                          progress=False)  # fmt: skip
    assert directory_digest(tiny_base) == before
    assert sorted(p.name for p in straight.iterdir()) == [
        "adapter_config.json", "adapter_model.safetensors", "vpgc_train.json"]  # fmt: skip
    card = json.loads((straight / "vpgc_train.json").read_text())
    assert card["steps"] == 12 and card["trainable_parameters"] == card["vpgc_parameters"]
    # The trained adapter lowers the loss on training samples (the fresh one is the base).
    tasks = [read_demon_task(p) for p in sorted((tiny_data / "train").iterdir())]
    samples = [(demon_prompt(t, s), s.response) for t in tasks for s in t.samples]
    prompts, answers = [p for p, _ in samples], [a for _, a in samples]
    with torch.no_grad():
        fresh = VPGCLVLM(HFLVLM(tiny_base), VPGCConfig(num_heads=2)).loss(prompts, answers, True)
        trained = load_adapter(HFLVLM(tiny_base), straight).loss(prompts, answers, True)
    assert trained < fresh

    class Killed(Exception):
        pass

    def kill(step: int) -> None:
        if step == 6:
            raise Killed

    with pytest.raises(Killed):
        train_on_synthetic(tiny_base, tmp_path / "resumed", *config, data_dir=tiny_data,
                           progress=False, on_step=kill)  # fmt: skip
    assert not (tmp_path / "resumed").exists()
    resumed = train_on_synthetic(tiny_base, tmp_path / "resumed", *config, data_dir=tiny_data,
                         progress=False)  # fmt: skip
    a = load_file(str(straight / "adapter_model.safetensors"))
    b = load_file(str(resumed / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["projector", "lora"])
def test_baselines_write_a_model_hflvlm_loads(
    method: str, tiny_base: Path, tiny_data: Path, tmp_path: Path
) -> None:
    out = train_on_synthetic(tiny_base, tmp_path / method, *_config(method=method, max_steps=3),
                     data_dir=tiny_data, progress=False)  # fmt: skip
    card = json.loads((out / "vpgc_train.json").read_text())
    if method == "lora":
        assert 0.3 <= card["trainable_parameters"] / card["vpgc_parameters"] <= 3
    reloaded = HFLVLM(out)
    base = HFLVLM(tiny_base)
    changed = [
        n for (n, p), q in zip(reloaded.model.named_parameters(), base.model.parameters(),
                               strict=True) if not torch.equal(p, q)
    ]  # fmt: skip
    assert changed
    if method == "projector":
        assert all("multi_modal_projector" in n for n in changed)
    else:
        assert all(n.endswith(("q_proj.weight", "v_proj.weight")) for n in changed)
        assert not any("vision_tower" in n for n in changed)  # the LLM's projections only


@pytest.mark.slow
def test_cli_train_then_demon_eval_with_the_adapter(tiny_base: Path, tmp_path: Path) -> None:
    root = tmp_path / "demon"
    made = runner.invoke(app, ["demon", "make-builtin", "--out", str(root), "--n-train", "2",
                               "--n-test", "2"])  # fmt: skip
    assert made.exit_code == 0, made.output
    adapter = tmp_path / "adapter"
    args = ["vpgc", "train", "--base", str(tiny_base), "--out", str(adapter), "--max-steps",
            "2", "--n-train", "2", "--num-heads", "2", "--region", "random"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (adapter / "adapter_model.safetensors").is_file()
    evaluate = ["demon", "eval", "--model", str(tiny_base), "--data", str(root / "test"),
                "--tasks", "SpotTheEdit", "--max-new-tokens", "2"]  # fmt: skip
    result = runner.invoke(app, [*evaluate, "--out", str(tmp_path / "e"), "--adapter",
                                 str(adapter)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "e" / "SpotTheEdit" / "pred.json").is_file()
    # One-line errors: no such adapter, an adapter for another base.
    missing = runner.invoke(app, [*evaluate, "--out", str(tmp_path / "m"), "--adapter",
                                  str(tmp_path / "nope")])  # fmt: skip
    assert missing.exit_code == 2 and "no such adapter directory" in missing.output
    other = _build_tiny(tmp_path / "other", 1)
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["llm_hidden_size"] = 64
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    wrong = runner.invoke(app, [*evaluate, "--model", str(other), "--out", str(tmp_path / "w"),
                                "--adapter", str(adapter)])  # fmt: skip
    assert wrong.exit_code == 2 and "--adapter" in wrong.output
    bad = runner.invoke(app, ["vpgc", "train", "--base", str(tmp_path / "nope"), "--out",
                              str(tmp_path / "x")])  # fmt: skip
    assert bad.exit_code == 2 and "no such model directory" in bad.output


@pytest.mark.slow
def test_a_tiny_blip2_trains_and_evaluates_with_its_adapter(tmp_path: Path) -> None:
    from tests.lvlm.tiny_lvlms import build_tiny_blip2

    base = tmp_path / "blip2"
    build_tiny_blip2(base)
    adapter = train_on_synthetic(
        base, tmp_path / "adapter", *_config(max_steps=3, region="random"),
        data_dir=tmp_path / "data", progress=False,
    )  # fmt: skip
    card = json.loads((adapter / "vpgc_train.json").read_text())
    assert card["steps"] == 3 and card["history"][-1]["loss"] > 0
    assert json.loads((adapter / "adapter_config.json").read_text())["base_kind"] == "qformer"
    root = tmp_path / "demon"
    made = runner.invoke(app, ["demon", "make-builtin", "--out", str(root), "--n-train", "2",
                               "--n-test", "2"])  # fmt: skip
    assert made.exit_code == 0, made.output
    result = runner.invoke(app, ["demon", "eval", "--model", str(base), "--data",
                                 str(root / "test"), "--tasks", "WhichImage,SameCount",
                                 "--max-new-tokens", "2", "--out", str(tmp_path / "e"),
                                 "--adapter", str(adapter)])  # fmt: skip
    assert result.exit_code == 0, result.output
    scores = json.loads((tmp_path / "e" / "demon_scores.json").read_text())
    assert set(scores["tasks"]) == {"WhichImage", "SameCount"}
    # Attention regions on BLIP-2 (the Q-Former's cross-attention): tests/.../test_regions.py.

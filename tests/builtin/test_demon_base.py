"""The built-in DEMON base LVLM: generic formats disjoint from the tasks, encoding identical to
HFLVLM's, training and fine-tuning, the shipped copy's checks, and the benchmark pipeline."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch

from drum.builtin.demon import DEMON_TASKS, BuiltinDemonConfig, make_builtin_demon
from drum.builtin.demon.assets import (
    DemonAssetError,
    base_identity,
    freeze_demon_base,
    shipped_demon_base,
)
from drum.builtin.demon.generic import COMPARED, GENERIC_INSTRUCTIONS, GENERIC_TASKS
from drum.builtin.demon.instructions import INSTRUCTIONS
from drum.builtin.demon.lvlm import (
    CARD_NAME,
    DemonLVLMConfig,
    EncodedTasks,
    SampleEncoder,
    base_vocabulary,
    train_demon_lvlm,
)
from drum.builtin.demon.make import make_generic_demon
from drum.builtin.demon.scenes import cell_name
from drum.builtin.lvlm.model import BuiltinLVLMArchitecture, build_builtin_lvlm
from drum.builtin.lvlm.train import IGNORE
from drum.demon.format import DemonTask, read_demon_task
from drum.demon.prompt import demon_prompt, demon_text
from drum.pipelines.demon_benchmark import DEFAULT_EMBEDDER

TINY = BuiltinLVLMArchitecture(hidden=32, layers=2, heads=2, intermediate=64)
TINY_RUN = DemonLVLMConfig(
    architecture=TINY, batch_size=8, lr=3e-3, warmup_steps=2, max_steps=30, eval_every=15,
    checkpoint_every=10,
)  # fmt: skip


@pytest.fixture(scope="module")
def generic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("generic") / "root"
    make_generic_demon(root, BuiltinDemonConfig(seed=1, n_train=40, n_test=12))
    return root


@pytest.fixture(scope="module")
def bench_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bench") / "root"
    make_builtin_demon(None, root, BuiltinDemonConfig(seed=2, n_train=6, n_test=6))
    return root


def _tasks(root: Path, split: str, names: list[str] | tuple[str, ...]) -> list[DemonTask]:
    return [read_demon_task(root / split / name) for name in names]


# ------------------------------------------------------------------ generic formats vs tasks
def test_generic_formats_never_ask_what_the_tasks_ask(generic_root: Path) -> None:
    cells = {cell_name(c) for c in range(9)}
    task_instructions = {text for texts in INSTRUCTIONS.values() for text in texts}
    assert not task_instructions & {t for texts in GENERIC_INSTRUCTIONS.values() for t in texts}
    for task in _tasks(generic_root, "train", list(GENERIC_TASKS)):
        for sample in task.samples:
            response = str(sample.response)
            assert " to " not in response  # SpotTheEdit / MovedObject answers
            assert not any(cell in response for cell in cells)
            assert response != "Image D"  # WhichImage / MissingPanel's fourth candidate
            assert len(sample.images) <= 3  # the tasks' image-choice forms show 4 or 7
            assert "blank" not in sample.context and "facts" not in sample.context
            if task.name == "CompareTwo":
                asked = re.search(r"same (\w+) \?", sample.context)[1]
                assert asked in COMPARED and asked != "count"
            if task.name == "PickOfTwo":
                assert response in {f"Image {x}" for x in "ABC"[: len(sample.images)]}


def test_the_base_vocabulary_knows_every_prompt_and_answer_word(
    generic_root: Path, bench_root: Path
) -> None:
    model, processor = build_builtin_lvlm(TINY, DEFAULT_EMBEDDER, base_vocabulary())
    unk = processor.tokenizer.unk_token_id
    tasks = _tasks(generic_root, "train", list(GENERIC_TASKS)) + _tasks(
        bench_root, "test", DEMON_TASKS
    )
    for task in tasks:
        for sample in task.samples:
            for text in (demon_text(task, sample), str(sample.response)):
                text = re.sub(r"\{image#\d+\}", " ", text)
                ids = processor.tokenizer(text, add_special_tokens=False)["input_ids"]
                assert unk not in ids, (task.name, text)


# ------------------------------------------------------------------------------- encoding
def test_training_ids_are_the_ids_hflvlm_scores(tmp_path: Path, bench_root: Path) -> None:
    from drum.lvlm.hf import HFLVLM

    model, processor = build_builtin_lvlm(TINY, DEFAULT_EMBEDDER, base_vocabulary())
    model.save_pretrained(tmp_path / "m")
    processor.save_pretrained(tmp_path / "m")
    lvlm = HFLVLM(tmp_path / "m")
    encoder = SampleEncoder(processor, 5)
    for name in ("MissingPanel", "ShapeFacts", "ShapeChat"):  # 7, 2-3 and 3 images
        [task] = _tasks(bench_root, "test", [name])
        sample = task.samples[0]
        rows = {Path(p): i for i, p in enumerate(sample.images)}
        ids, labels, images = encoder.encode(task, 0, rows)
        [expected], _, _, _ = lvlm._encode([demon_prompt(task, sample)])
        answer = lvlm._answer_ids(str(sample.response))
        assert ids == [*expected, *answer, processor.tokenizer.eos_token_id]
        # Only the response and [EOS] are labelled.
        assert labels[: len(expected)] == [IGNORE] * len(expected)
        assert labels[len(expected) :] == ids[len(expected) :]
        assert images == [rows[Path(p)] for p in demon_prompt(task, sample).images]


# ------------------------------------------------------------------------------- training
def test_training_lowers_the_loss_and_a_finished_run_is_reused(
    tmp_path: Path, generic_root: Path
) -> None:
    train = _tasks(generic_root, "train", ["AskOne", "CompareTwo"])
    probes = _tasks(generic_root, "test", ["AskOne"])
    out = train_demon_lvlm(
        train, tmp_path / "base", TINY_RUN, embedder_dir=DEFAULT_EMBEDDER, probes=probes,
        about={"note": "test"}, progress=False,
    )  # fmt: skip
    card = json.loads((out / CARD_NAME).read_text())
    assert card["steps"] == 30 and card["identity"]["note"] == "test"
    assert card["history"][-1]["loss"] < card["history"][0]["loss"]
    assert set(card["final_probes"]) == {"AskOne"}
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    train_demon_lvlm(
        train, tmp_path / "base", TINY_RUN, embedder_dir=DEFAULT_EMBEDDER, probes=probes,
        about={"note": "test"}, progress=False,
    )  # fmt: skip
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp

    # A ceiling run starts from the base, trains everything but the vision tower.
    from transformers import LlavaForConditionalGeneration

    ceiling = train_demon_lvlm(
        _tasks(generic_root, "train", ["PickOfTwo"]), tmp_path / "ceiling",
        replace(TINY_RUN, max_steps=5), start=out, progress=False,
    )  # fmt: skip
    before = LlavaForConditionalGeneration.from_pretrained(out).state_dict()
    after = LlavaForConditionalGeneration.from_pretrained(ceiling).state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and not any("vision_tower" in k for k in changed)
    assert any("multi_modal_projector" in k for k in changed)


def test_training_needs_one_start(generic_root: Path, tmp_path: Path) -> None:
    train = _tasks(generic_root, "train", ["AskOne"])
    with pytest.raises(ValueError, match="exactly one"):
        train_demon_lvlm(train, tmp_path / "x", TINY_RUN)
    with pytest.raises(ValueError, match="no task"):
        train_demon_lvlm([], tmp_path / "x", TINY_RUN, embedder_dir=DEFAULT_EMBEDDER)


def test_encoded_tasks_draw_every_task(generic_root: Path) -> None:
    import numpy as np

    model, processor = build_builtin_lvlm(TINY, DEFAULT_EMBEDDER, base_vocabulary())
    tasks = _tasks(generic_root, "test", ["AskOne", "PickOfTwo"])
    data = EncodedTasks(model, processor, tasks, "x")
    assert data.features.shape[:2] == (12 + sum(len(s.images) for s in _picks(generic_root)), 5)
    drawn = data.draw(np.random.default_rng(0), 200)
    lengths = {len(images) for _, _, images in drawn}
    assert 1 in lengths and lengths & {2, 3}


def _picks(root: Path) -> tuple:
    return read_demon_task(root / "test" / "PickOfTwo").samples


# ------------------------------------------------------------------------------ shipping
def test_a_frozen_base_is_used_only_for_its_own_identity(tmp_path: Path) -> None:
    model_dir = tmp_path / "base"
    model_dir.mkdir()
    (model_dir / "model.safetensors").write_bytes(b"weights")
    (model_dir / "config.json").write_text("{}")
    identity = base_identity(TINY_RUN, BuiltinDemonConfig(), DEFAULT_EMBEDDER)
    assets = freeze_demon_base(model_dir, identity, ["drum demon train-base"], tmp_path / "ship")
    assert shipped_demon_base(identity, assets) == assets / "model"
    other = base_identity(replace(TINY_RUN, seed=1), BuiltinDemonConfig(), DEFAULT_EMBEDDER)
    assert shipped_demon_base(other, assets) is None
    assert json.loads(json.dumps(identity)) == identity  # the manifest round-trips it
    (assets / "model" / "model.safetensors").write_bytes(b"tampered")
    with pytest.raises(DemonAssetError, match="does not match"):
        shipped_demon_base(identity, assets)


def test_the_shipped_base_matches_the_default_recipe() -> None:
    from drum.pipelines.demon_benchmark import DemonBenchmarkConfig, _resolved

    config = DemonBenchmarkConfig()
    identity = base_identity(config.base, _resolved(config.generic), DEFAULT_EMBEDDER)
    shipped = shipped_demon_base(identity)
    assert shipped is not None, "drum/assets/demon_base is missing or stale: retrain and freeze"
    card = json.loads((shipped / CARD_NAME).read_text())
    assert card["identity"]["generic_data"] == asdict(_resolved(config.generic))

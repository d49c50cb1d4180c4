"""Fine-tuning the dual encoder on ranked lists: learning, resume, identity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from drum.finetune import trainer as trainer_module
from drum.finetune.config import RetrieverTrainConfig
from drum.finetune.dual_encoder import TrainableDualEncoder
from drum.finetune.lists import RankedList
from drum.finetune.trainer import CARD_NAME, train_retriever
from tests.finetune.ranked import answer_ranked_lists

CONFIG = RetrieverTrainConfig(epochs=2, batch_size=8, candidates_per_query=4, lr=1e-3)


@pytest.fixture(scope="module")
def lists(tiny_world: Path) -> list[RankedList]:
    return answer_ranked_lists(tiny_world, 24)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(path / "model.safetensors")


def test_training_updates_the_model_and_writes_a_card(
    tiny_clip_dir: Path, lists: list[RankedList], tmp_path: Path
) -> None:
    out = train_retriever(tiny_clip_dir, lists, tmp_path / "drum", CONFIG, progress=False)
    card = json.loads((out / CARD_NAME).read_text())
    assert [row["epoch"] for row in card["history"]] == [1, 2]
    before, after = _weights(tiny_clip_dir), _weights(out)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert not (tmp_path / ".drum.checkpoint").exists()
    # The saved directory is an embedder again.
    TrainableDualEncoder.from_pretrained(out)


def test_same_run_is_not_retrained(
    tiny_clip_dir: Path, lists: list[RankedList], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = train_retriever(tiny_clip_dir, lists, tmp_path / "drum", CONFIG, progress=False)
    monkeypatch.setattr(trainer_module, "TrainableDualEncoder", None)  # any use would fail
    assert train_retriever(tiny_clip_dir, lists, out, CONFIG, progress=False) == out


def test_resume_after_a_kill_gives_the_uninterrupted_weights(
    tiny_clip_dir: Path, lists: list[RankedList], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = train_retriever(tiny_clip_dir, lists, tmp_path / "whole", CONFIG, progress=False)

    real = trainer_module.sample_positions
    calls = {"n": 0}
    steps_per_epoch = len(lists) // CONFIG.batch_size

    def dies_in_epoch_two(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] > (steps_per_epoch + 1) * CONFIG.batch_size:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "sample_positions", dies_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train_retriever(tiny_clip_dir, lists, tmp_path / "resumed", CONFIG, progress=False)
    # The checkpoint of epoch 1, named by its step.
    checkpoints = [p.name for p in (tmp_path / ".resumed.checkpoint").iterdir()]
    assert checkpoints == [f"step_{steps_per_epoch}"]
    monkeypatch.setattr(trainer_module, "sample_positions", real)
    resumed = train_retriever(tiny_clip_dir, lists, tmp_path / "resumed", CONFIG, progress=False)
    a, b = _weights(whole), _weights(resumed)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_projection_mode_trains_only_the_projections(tiny_clip_dir: Path) -> None:
    encoder = TrainableDualEncoder.from_pretrained(tiny_clip_dir)
    encoder.set_trainable("projection")
    trained = {n for n, p in encoder.model.named_parameters() if p.requires_grad}
    assert trained == {"visual_projection.weight", "text_projection.weight"}


def test_siglip_projection_mode_changes_only_the_heads(
    tiny_siglip_dir: Path, lists: list[RankedList], tmp_path: Path
) -> None:
    config = RetrieverTrainConfig(
        epochs=1, batch_size=8, candidates_per_query=4, lr=1e-2, trainable="projection"
    )
    out = train_retriever(tiny_siglip_dir, lists, tmp_path / "siglip", config, progress=False)
    before, after = _weights(tiny_siglip_dir), _weights(out)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(".head." in f".{k}" for k in changed)


def test_siglip2_trains_and_stays_an_embedder(
    tiny_siglip2_dir: Path, lists: list[RankedList], tmp_path: Path
) -> None:
    """SigLIP 2's vision inputs (pixel values, patch mask, patch grid) reach the trained
    model, and the saved checkpoint is served by HFDualEncoder again."""
    from drum.embed.hf import HFDualEncoder

    config = RetrieverTrainConfig(epochs=1, batch_size=8, candidates_per_query=4, lr=1e-3)
    out = train_retriever(tiny_siglip2_dir, lists, tmp_path / "siglip2", config, progress=False)
    before, after = _weights(tiny_siglip2_dir), _weights(out)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("vision_model.") for k in changed)
    assert any(k.startswith("text_model.") for k in changed)
    image = lists[0].query.image
    assert HFDualEncoder(out).embed_images([image]).shape == (1, 32)

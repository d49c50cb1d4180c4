"""``only_at_positions`` and the fast scoring path's last-layer MLP run only at kept positions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch

from drum.lvlm.hf import HFLVLM
from drum.lvlm.hooks import decoder_layers
from drum.lvlm.last_layer_mlp import last_layer_mlp, only_at_positions
from drum.lvlm.prompt import ICLPrompt
from drum.utils import allocator


def test_a_module_runs_only_at_the_positions_and_is_zero_elsewhere() -> None:
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.SiLU(), torch.nn.Linear(16, 4))
    hidden = torch.randn(3, 7, 8)
    keep = torch.tensor([2, 5, 6])
    seen: list[tuple[int, ...]] = []
    mlp[0].register_forward_hook(lambda m, args, out: seen.append(tuple(args[0].shape)))
    with only_at_positions(mlp, keep):
        pruned = mlp(hidden)
    assert seen == [(3, 3, 8)]
    assert pruned.shape == (3, 7, 4)
    torch.testing.assert_close(pruned[:, keep], mlp(hidden)[:, keep])
    others = [i for i in range(7) if i not in keep.tolist()]
    assert torch.count_nonzero(pruned[:, others]) == 0
    # Outside the block the module is whole again.
    assert mlp(hidden).shape == (3, 7, 4) and seen[-1] == (3, 7, 8)


@pytest.fixture
def watched(build: Callable[[str], Any]) -> Iterator[tuple[HFLVLM, list[int]]]:
    """A tiny LLaVA and the sequence length its last decoder layer's MLP sees, per pass."""
    lvlm = HFLVLM(build("llava").path)
    mlp = last_layer_mlp(lvlm.model)
    assert mlp is decoder_layers(lvlm.model)[-1].mlp
    widths: list[int] = []
    handle = mlp.register_forward_hook(
        lambda module, args, output: widths.append(int(args[0].shape[1]))
    )
    yield lvlm, widths
    handle.remove()


def test_fast_scoring_runs_the_last_mlp_only_where_answers_are_scored(
    watched: tuple[HFLVLM, list[int]],
    build: Callable[[str], Any],
    batch: tuple[list[ICLPrompt], list[str]],
) -> None:
    (lvlm, widths), (prompts, answers) = watched, batch
    lengths: list[int] = []
    lvlm.model.register_forward_hook(
        lambda module, args, kwargs, output: lengths.append(int(kwargs["input_ids"].shape[1])),
        with_kwargs=True,
    )
    fast = lvlm.score(prompts, answers, batch_size=1)
    # One row per batch: the MLP sees the positions that predict its n answer tokens (the
    # prompt's last token and the first n - 1 answer tokens), of a longer sequence.
    assert sorted(widths) == sorted(len(lvlm._answer_ids(a)) for a in answers)
    assert all(w < length for w, length in zip(widths, lengths, strict=True))
    slow = HFLVLM(build("llava").path, image_feature_cache_size=0).score(prompts, answers)
    for a, e in zip(fast, slow, strict=True):
        assert a.sum == pytest.approx(e.sum, abs=1e-4)


def test_with_a_layer_hook_the_last_mlp_runs_everywhere(
    watched: tuple[HFLVLM, list[int]], batch: tuple[list[ICLPrompt], list[str]]
) -> None:
    (lvlm, widths), (prompts, answers) = watched, batch
    with lvlm.layer_hook(-1, lambda hidden, visual: hidden):
        inputs = lvlm.score_inputs(prompts, [lvlm._answer_ids(a) for a in answers])
        lvlm.score(prompts, answers)
    assert widths == [int(inputs.input_ids.shape[1])]


def test_a_cpu_model_keeps_freed_memory_unless_asked_not_to(
    build: Callable[[str], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(allocator, "retain_freed_memory", lambda: calls.append(1) or True)
    HFLVLM(build("llava").path, retain_freed_memory=False)
    assert calls == []
    HFLVLM(build("llava").path)
    assert calls == [1]

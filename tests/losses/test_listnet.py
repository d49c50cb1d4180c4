"""ListNet / KL distillation: a naive loop, known values, masking, gradients, non-negativity."""

from __future__ import annotations

import math

import torch

from drum.losses import RANKING_LOSSES
from drum.losses.listnet import ListNetLoss, listnet_loss


def naive_listnet(
    scores: torch.Tensor,
    feedback: torch.Tensor,
    mask: torch.Tensor,
    temperature: float,
    teacher_temperature: float,
) -> float:
    per_query = []
    for b in range(scores.shape[0]):
        keep = [k for k in range(scores.shape[1]) if mask[b, k]]
        if not keep:
            continue
        t = [math.exp(float(feedback[b, k]) / teacher_temperature) for k in keep]
        s = [math.exp(float(scores[b, k]) / temperature) for k in keep]
        p = [x / sum(t) for x in t]
        q = [x / sum(s) for x in s]
        per_query.append(sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True)))
    return sum(per_query) / len(per_query)


def test_matches_a_naive_loop_with_mask_and_temperatures() -> None:
    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(4, 6, generator=generator, dtype=torch.float64)
    feedback = 3 * torch.randn(4, 6, generator=generator, dtype=torch.float64)
    mask = torch.rand(4, 6, generator=generator) > 0.3
    mask[:, 0] = True
    mask[3] = False  # a query with no candidate is left out of the mean
    expected = naive_listnet(scores, feedback, mask, 0.05, 2.0)
    actual = listnet_loss(scores, feedback, mask, temperature=0.05, teacher_temperature=2.0)
    assert abs(actual.item() - expected) < 1e-10
    unmasked = torch.ones_like(mask)
    assert (
        abs(
            listnet_loss(scores, feedback).item()
            - naive_listnet(scores, feedback, unmasked, 1.0, 1.0)
        )
        < 1e-10
    )


def test_known_values() -> None:
    # Same distribution (feedback / 2 == scores / 1, plus a per-row shift): KL is 0.
    scores = torch.tensor([[0.1, -1.0, 2.0], [3.0, 3.0, 0.0]], dtype=torch.float64)
    feedback = 2 * scores + torch.tensor([[5.0], [-1.0]], dtype=torch.float64)
    assert abs(listnet_loss(scores, feedback, teacher_temperature=2.0).item()) < 1e-12
    # p = (1/2, 1/2), q = (1/4, 3/4): KL = 1/2 log 2 + 1/2 log(2/3) = 1/2 log(4/3).
    scores = torch.tensor([[0.0, math.log(3.0)]], dtype=torch.float64)
    feedback = torch.zeros(1, 2, dtype=torch.float64)
    expected = 0.5 * math.log(4 / 3)
    assert abs(expected - 0.14384103622589042) < 1e-12
    assert abs(listnet_loss(scores, feedback).item() - expected) < 1e-12


def test_padded_candidates_are_ignored() -> None:
    generator = torch.Generator().manual_seed(1)
    scores = torch.randn(2, 5, generator=generator, dtype=torch.float64)
    feedback = torch.randn(2, 5, generator=generator, dtype=torch.float64)
    mask = torch.tensor([[True, True, True, False, False]] * 2)
    expected = listnet_loss(scores[:, :3], feedback[:, :3])
    noisy_scores = scores.masked_fill(~mask, 50.0)
    noisy_feedback = feedback.masked_fill(~mask, -50.0)
    torch.testing.assert_close(listnet_loss(noisy_scores, noisy_feedback, mask), expected)


def test_gradcheck() -> None:
    generator = torch.Generator().manual_seed(2)
    scores = torch.randn(3, 5, generator=generator, dtype=torch.float64).requires_grad_()
    feedback = torch.randn(3, 5, generator=generator, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.bool)
    assert torch.autograd.gradcheck(
        lambda x: listnet_loss(x, feedback, temperature=0.5, teacher_temperature=2.0), (scores,)
    )
    assert torch.autograd.gradcheck(lambda x: listnet_loss(x, feedback, mask), (scores,))


def test_non_negative_on_random_inputs() -> None:
    generator = torch.Generator().manual_seed(3)
    for _ in range(20):
        scores = 5 * torch.randn(4, 7, generator=generator, dtype=torch.float64)
        feedback = 5 * torch.randn(4, 7, generator=generator, dtype=torch.float64)
        mask = torch.rand(4, 7, generator=generator) > 0.4
        assert listnet_loss(scores, feedback, mask).item() >= 0.0
        assert listnet_loss(scores, feedback).item() > 0.0


def test_module_and_registry() -> None:
    generator = torch.Generator().manual_seed(4)
    scores = torch.randn(3, 4, generator=generator)
    feedback = torch.randn(3, 4, generator=generator)
    mask = torch.tensor([[True, True, True, False]] * 3)
    assert RANKING_LOSSES["listnet"] is ListNetLoss
    torch.testing.assert_close(
        ListNetLoss(temperature=0.1, teacher_temperature=0.5)(scores, feedback, mask),
        listnet_loss(scores, feedback, mask, temperature=0.1, teacher_temperature=0.5),
    )

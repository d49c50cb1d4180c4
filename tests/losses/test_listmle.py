"""ListMLE: a naive loop, known values, ties, masking, gradients, and order preference."""

from __future__ import annotations

import math

import torch

from drum.losses import RANKING_LOSSES
from drum.losses.listmle import ListMLELoss, listmle_loss


def naive_listmle(scores: torch.Tensor, feedback: torch.Tensor, mask: torch.Tensor) -> float:
    per_query = []
    for b in range(scores.shape[0]):
        keep = [k for k in range(scores.shape[1]) if mask[b, k]]
        if not keep:
            continue
        order = sorted(keep, key=lambda k: -float(feedback[b, k]))  # stable: ties by index
        s = [float(scores[b, k]) for k in order]
        loss = 0.0
        for i in range(len(s)):
            loss -= s[i] - math.log(sum(math.exp(x) for x in s[i:]))
        per_query.append(loss)
    return sum(per_query) / len(per_query)


def test_matches_a_naive_loop() -> None:
    generator = torch.Generator().manual_seed(0)
    scores = 2 * torch.randn(5, 7, generator=generator, dtype=torch.float64)
    feedback = torch.randint(0, 4, (5, 7), generator=generator).double()  # ties included
    mask = torch.rand(5, 7, generator=generator) > 0.3
    mask[4] = False  # a query with no candidate is left out of the mean
    assert (
        abs(listmle_loss(scores, feedback, mask).item() - naive_listmle(scores, feedback, mask))
        < 1e-10
    )
    unmasked = torch.ones_like(mask)
    assert (
        abs(listmle_loss(scores, feedback).item() - naive_listmle(scores, feedback, unmasked))
        < 1e-10
    )


def test_known_values() -> None:
    # Two items, teacher prefers item 0: loss = -(a - log(e^a + e^b)) - (b - b) = log(1 + e^(b-a)).
    scores = torch.tensor([[1.0, 3.0]], dtype=torch.float64)
    feedback = torch.tensor([[0.9, 0.1]], dtype=torch.float64)
    assert abs(listmle_loss(scores, feedback).item() - math.log1p(math.exp(2.0))) < 1e-12
    # Three equal scores: log 3 + log 2 + log 1 = log 6, whatever the teacher's order.
    scores = torch.zeros(1, 3, dtype=torch.float64)
    feedback = torch.tensor([[0.2, 0.7, 0.1]], dtype=torch.float64)
    assert abs(listmle_loss(scores, feedback).item() - math.log(6.0)) < 1e-12


def test_ties_follow_index_order() -> None:
    # Tied teacher scores: the stable sort puts candidate 0 before candidate 1.
    scores = torch.tensor([[0.0, 2.0]], dtype=torch.float64)
    feedback = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
    assert abs(listmle_loss(scores, feedback).item() - math.log1p(math.exp(2.0))) < 1e-12


def test_padded_candidates_are_ignored() -> None:
    generator = torch.Generator().manual_seed(1)
    scores = torch.randn(2, 5, generator=generator, dtype=torch.float64)
    feedback = torch.randn(2, 5, generator=generator, dtype=torch.float64)
    mask = torch.tensor([[True, False, True, True, False], [True, True, True, False, False]])
    expected = naive_listmle(scores, feedback, mask)
    noisy_scores = scores.masked_fill(~mask, 40.0)
    noisy_feedback = feedback.masked_fill(~mask, 99.0)  # would sort first if not masked
    assert abs(listmle_loss(noisy_scores, noisy_feedback, mask).item() - expected) < 1e-10


def test_gradcheck() -> None:
    generator = torch.Generator().manual_seed(2)
    scores = torch.randn(3, 5, generator=generator, dtype=torch.float64).requires_grad_()
    feedback = torch.randn(3, 5, generator=generator, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 0, 1, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.bool)
    assert torch.autograd.gradcheck(lambda x: listmle_loss(x, feedback), (scores,))
    assert torch.autograd.gradcheck(lambda x: listmle_loss(x, feedback, mask), (scores,))
    listmle_loss(scores, feedback, mask).backward()
    assert torch.isfinite(scores.grad).all()
    assert torch.equal(scores.grad[~mask], torch.zeros_like(scores.grad[~mask]))


def test_correct_order_beats_reversed_order() -> None:
    feedback = torch.tensor([[4.0, 3.0, 2.0, 1.0, 0.0]], dtype=torch.float64)
    correct = feedback.clone()
    assert listmle_loss(correct, feedback).item() < listmle_loss(correct.flip(-1), feedback).item()


def test_module_and_registry() -> None:
    generator = torch.Generator().manual_seed(4)
    scores = torch.randn(3, 4, generator=generator)
    feedback = torch.randn(3, 4, generator=generator)
    mask = torch.tensor([[True, True, False, True]] * 3)
    assert RANKING_LOSSES["listmle"] is ListMLELoss
    torch.testing.assert_close(
        ListMLELoss()(scores, feedback, mask), listmle_loss(scores, feedback, mask)
    )

"""``udr_objective``: the retriever's training objective is the tested UDR loss, bit for bit.

The retriever trained with an inline formula before it called ``udr_objective``; that formula
is kept here so that the function is checked against it exactly (loss and gradients), as the
demo's numbers depend on the trained weights being unchanged.
"""

from __future__ import annotations

import pytest
import torch

from drum.losses import RANKING_LOSSES, UDRLoss, udr_loss, udr_objective
from drum.losses.lambda_rank import LambdaMRRLoss


def _inputs(seed: int, batch: int = 5, k: int = 4, dim: int = 8):
    generator = torch.Generator().manual_seed(seed)
    queries = torch.nn.functional.normalize(torch.randn(batch, dim, generator=generator), dim=-1)
    pool = torch.nn.functional.normalize(torch.randn(batch * k, dim, generator=generator), dim=-1)
    # Each list best first, as RankedList keeps it; rounding makes ties.
    relevance = torch.rand(batch, k, generator=generator).round(decimals=1)
    relevance = relevance.sort(dim=1, descending=True).values
    return queries.requires_grad_(), pool.requires_grad_(), relevance


def _inline(queries, pool, relevance, list_loss, list_weight, contrastive_weight, scale):  # type: ignore[no-untyped-def]
    """The retriever's objective as its trainer wrote it before (positive: column 0)."""
    batch, k = relevance.shape
    similarity = torch.einsum("bd,bkd->bk", queries, pool.view(batch, k, -1))
    loss = list_weight * list_loss(scale * similarity, relevance, None)
    if contrastive_weight:
        positive = torch.arange(batch) * k
        loss = loss + contrastive_weight * torch.nn.functional.cross_entropy(
            scale * queries @ pool.T, positive
        )
    return loss


def _objective(queries, pool, relevance, list_loss, list_weight, contrastive_weight, scale):  # type: ignore[no-untyped-def]
    """The call the trainer makes now."""
    batch, k = relevance.shape
    similarity = torch.einsum("bd,bkd->bk", queries, pool.view(batch, k, -1))
    return udr_objective(
        scale * similarity,
        scale * queries @ pool.T,
        relevance,
        list_weight=list_weight,
        contrastive_weight=contrastive_weight,
        list_loss=list_loss,
    ).loss


@pytest.mark.parametrize("name", sorted(RANKING_LOSSES))
@pytest.mark.parametrize("contrastive_weight", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_the_former_inline_objective_bit_for_bit(
    name: str, contrastive_weight: float, seed: int
) -> None:
    list_loss = RANKING_LOSSES[name]()
    results = []
    for objective in (_inline, _objective):
        queries, pool, relevance = _inputs(seed)
        loss = objective(queries, pool, relevance, list_loss, 4.0, contrastive_weight, 20.0)
        loss.backward()
        results.append((loss.detach(), queries.grad, pool.grad))
    (loss_a, q_a, p_a), (loss_b, q_b, p_b) = results
    assert torch.equal(loss_a, loss_b)
    assert torch.equal(q_a, q_b) and torch.equal(p_a, p_b)


def test_udr_loss_is_the_objective_on_the_diagonal_blocks() -> None:
    queries, pool, relevance = _inputs(3)
    scores = queries @ pool.T
    own = scores.view(5, 5, 4).diagonal(dim1=0, dim2=1).T
    a = udr_loss(scores, relevance, list_weight=2.0)
    b = udr_objective(own, scores, relevance, list_weight=2.0, list_loss=LambdaMRRLoss())
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert torch.equal(UDRLoss(2.0)(scores, relevance).loss, a.loss)


def test_contrastive_term_prefers_the_lvlms_best_candidate() -> None:
    queries = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), dim=-1)
    # One candidate per query: the first list's is the first query's match.
    right = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    wrong = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    feedback = torch.ones(2, 1)
    out_right = udr_objective(torch.zeros(2, 1), 10.0 * queries @ right.T, feedback)
    out_wrong = udr_objective(torch.zeros(2, 1), 10.0 * queries @ wrong.T, feedback)
    assert out_right.contrastive_loss < out_wrong.contrastive_loss
    expected = -torch.log_softmax(10.0 * queries @ right.T, dim=1)[[0, 1], [0, 1]].mean()
    torch.testing.assert_close(out_right.contrastive_loss, expected)


def test_no_contrastive_term_when_its_weight_is_zero() -> None:
    queries, pool, relevance = _inputs(4)
    scores = queries @ pool.T
    own = scores.view(5, 5, 4).diagonal(dim1=0, dim2=1).T
    out = udr_objective(own, scores, relevance, list_weight=1.0, contrastive_weight=0.0)
    assert torch.equal(out.loss, out.list_loss) and float(out.contrastive_loss) == 0.0


def test_refuses_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="batch_scores"):
        udr_objective(torch.zeros(2, 3), torch.zeros(2, 5), torch.zeros(2, 3))
    with pytest.raises(ValueError):
        udr_objective(torch.zeros(2, 3), torch.zeros(2, 6), torch.zeros(2, 4))

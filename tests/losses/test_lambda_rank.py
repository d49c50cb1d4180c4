"""UDR's lambda-MRR list loss: equals UDR's own values, a naive loop and a hand value; gradients.

UDR's values come from ``fixtures/udr_lambda_mrr_e7a5caa.json``: its ``lambda_mrr_loss`` and
``BiEncoder_list_ranking_loss.calc`` (github.com/KaiLv69/UDR, commit e7a5caa, file
``DPR/dpr/models/biencoder.py``) run on the stored inputs; the file records how.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from drum.losses import RANKING_LOSSES
from drum.losses.lambda_rank import (
    LambdaMRRLoss,
    UDRLoss,
    feedback_to_relevance,
    lambda_mrr_loss,
    udr_loss,
)

FIXTURE = Path(__file__).parent / "fixtures" / "udr_lambda_mrr_e7a5caa.json"
DTYPES = {"float32": torch.float32, "float64": torch.float64}


# UDR's own values on stored inputs (KaiLv69/UDR e7a5caa, ``DPR/dpr/models/biencoder.py``).
UDR = json.loads(FIXTURE.read_text())


def _tensor(values: list, dtype: str) -> torch.Tensor:
    return torch.tensor(values, dtype=DTYPES[dtype])


def _case(name: str) -> dict:
    (case,) = [c for c in UDR["lambda_mrr_loss"] if c["name"] == name]
    return case


def _names(prefix: str) -> list[str]:
    return [c["name"] for c in UDR["lambda_mrr_loss"] if c["name"].startswith(prefix)]


def naive_lambda_mrr(scores: torch.Tensor, relevance: torch.Tensor) -> float:
    """Double loop over predicted positions, flat mean over every valid pair of the batch."""
    total, count = 0.0, 0
    for row_scores, row_relevance in zip(scores.tolist(), relevance.tolist(), strict=True):
        order = sorted(range(len(row_scores)), key=lambda k: -row_scores[k])  # stable
        for i, a in enumerate(order):
            for j, b in enumerate(order):
                if row_relevance[a] > row_relevance[b]:
                    diff = min(max(row_scores[a] - row_scores[b], -50.0), 50.0)
                    total += abs(1 / (i + 1) - 1 / (j + 1)) * math.log(1 + math.exp(-diff))
                    count += 1
    return total / count


def inverse_rank_relevance(batch: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """UDR-style relevance: 1 / rank with ranks a random permutation of 1..k per query."""
    ranks = torch.stack([torch.randperm(k, generator=generator) + 1 for _ in range(batch)])
    return 1.0 / ranks.double()


@pytest.mark.parametrize("name", _names("inverse_rank_"))
def test_matches_udr_reference(name: str) -> None:
    # Lists of 2 to 16 candidates, float32 and float64, two seeds each.
    case = _case(name)
    scores, relevance = (
        _tensor(case["scores"], case["dtype"]),
        _tensor(case["y_true"], case["dtype"]),
    )
    # 1e-6 even in float64: UDR builds its 1/position weights in float32 whatever the input
    # dtype (``1. / torch.arange(...)``), which moves its float64 result by ~1e-9.
    tol = 1e-6
    for reduction in ("mean", "sum"):
        expected = _tensor(case["udr"][reduction], case["dtype"])
        actual = lambda_mrr_loss(scores, relevance, reduction=reduction)
        torch.testing.assert_close(actual, expected, atol=tol, rtol=tol)


@pytest.mark.parametrize("name", _names("ties_and_large_gaps_"))
def test_matches_udr_reference_with_relevance_ties_and_large_gaps(name: str) -> None:
    # Scores 40 * randn (many differences beyond +-50), relevance in {0, 1, 2}: lots of ties.
    case = _case(name)
    scores, relevance = (
        _tensor(case["scores"], case["dtype"]),
        _tensor(case["y_true"], case["dtype"]),
    )
    for reduction in ("mean", "sum"):
        torch.testing.assert_close(
            lambda_mrr_loss(scores, relevance, reduction=reduction),
            _tensor(case["udr"][reduction], case["dtype"]),
        )


@pytest.mark.parametrize("name", _names("padding_"))
def test_matches_udr_reference_with_padding(name: str) -> None:
    case = _case(name)
    scores = _tensor(case["scores"], case["dtype"])
    udr_relevance = _tensor(case["y_true"], case["dtype"])  # UDR marks padding with y_true == -1
    mask = torch.tensor(case["mask"])
    assert torch.equal(udr_relevance == -1, ~mask) and not bool(mask.all())
    expected = _tensor(case["udr"]["mean"], case["dtype"])
    torch.testing.assert_close(lambda_mrr_loss(scores, udr_relevance, mask), expected)
    # Padded slots carry no information: changing their scores or relevance changes nothing.
    noisy = scores.masked_fill(~mask, 100.0)
    torch.testing.assert_close(lambda_mrr_loss(noisy, udr_relevance, mask), expected)
    torch.testing.assert_close(
        lambda_mrr_loss(scores, udr_relevance.masked_fill(~mask, 5.0), mask), expected
    )


def test_gradient_matches_udr_reference() -> None:
    (case,) = UDR["lambda_mrr_loss_gradient"]
    scores = _tensor(case["scores"], case["dtype"]).requires_grad_()
    loss = lambda_mrr_loss(scores, _tensor(case["y_true"], case["dtype"]))
    loss.backward()
    torch.testing.assert_close(loss.detach(), _tensor(case["udr"]["mean"], case["dtype"]))
    torch.testing.assert_close(scores.grad, _tensor(case["udr"]["grad_scores"], case["dtype"]))


def test_udr_objective_matches_reference_calc() -> None:
    (case,) = UDR["list_ranking_calc"]
    queries = _tensor(case["q_vectors"], case["dtype"])
    contexts = _tensor(case["ctx_vectors"], case["dtype"])
    expected = case["udr"]
    batch, k = queries.shape[0], contexts.shape[0] // queries.shape[0]
    # UDR's lists are sorted by LVLM rank: any strictly decreasing feedback says the same.
    feedback = -torch.arange(k, dtype=torch.float64).repeat(batch, 1)
    out = udr_loss(queries @ contexts.T, feedback, list_weight=case["rank_loss_factor"])
    torch.testing.assert_close(
        out.loss, _tensor(expected["total_loss"], case["dtype"]), atol=1e-6, rtol=1e-6
    )
    # UDR's float32 weights, as above
    assert abs(out.list_loss.item() - expected["list_ranking_loss"]) < 1e-6
    assert abs(out.contrastive_loss.item() - expected["in_batch_negative_loss"]) < 1e-12
    module_out = UDRLoss()(queries @ contexts.T, feedback)
    torch.testing.assert_close(module_out.loss, out.loss)  # list_weight defaults to UDR's 4

    # Shuffling each query's list (vectors and feedback together) must not matter.
    generator = torch.Generator().manual_seed(5)
    perms = [torch.randperm(k, generator=generator) for _ in range(batch)]
    shuffled_contexts = torch.cat(
        [contexts[b * k : (b + 1) * k][p] for b, p in enumerate(perms)], dim=0
    )
    shuffled_feedback = torch.stack([feedback[b][p] for b, p in enumerate(perms)])
    shuffled = udr_loss(queries @ shuffled_contexts.T, shuffled_feedback)
    torch.testing.assert_close(shuffled.loss, out.loss)


def test_udr_objective_ignores_padded_candidates() -> None:
    generator = torch.Generator().manual_seed(6)
    batch, k = 2, 4
    feedback = torch.randn(batch, k, generator=generator, dtype=torch.float64)
    scores = torch.randn(batch, batch * k, generator=generator, dtype=torch.float64)
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    out = udr_loss(scores, feedback, mask)
    noisy = scores.clone()
    noisy[:, ~mask.reshape(-1)] = 30.0
    torch.testing.assert_close(udr_loss(noisy, feedback, mask).loss, out.loss)
    with pytest.raises(ValueError, match="at least one real candidate"):
        udr_loss(scores, feedback, torch.zeros_like(mask))


@pytest.mark.parametrize(("batch", "k"), [(2, 3), (3, 6)])
def test_matches_naive_double_loop(batch: int, k: int) -> None:
    generator = torch.Generator().manual_seed(k)
    scores = torch.randn(batch, k, generator=generator, dtype=torch.float64)
    scores[0, 1] = scores[0, 0]  # a tie in the prediction: both use a stable order
    relevance = torch.randint(0, 3, (batch, k), generator=generator).double()
    relevance[0, :3] = torch.tensor([0.0, 2.0, 1.0])
    expected = naive_lambda_mrr(scores, relevance)
    assert abs(float(lambda_mrr_loss(scores, relevance)) - expected) < 1e-12


def test_hand_computed_three_candidates() -> None:
    # Predicted order by score: candidate 1 (s=2, y=1/2), 2 (s=1, y=1/3), 0 (s=0, y=1).
    # Pairs (i, j) of positions with y_i > y_j, weight |1/i - 1/j|, term log(1+exp(-(s_i-s_j))):
    #   (1, 2): w=1/2, d=+1;  (3, 1): w=2/3, d=-2;  (3, 2): w=1/6, d=-1.  Mean over 3 pairs.
    scores = torch.tensor([[0.0, 2.0, 1.0]], dtype=torch.float64)
    relevance = torch.tensor([[1.0, 1 / 2, 1 / 3]], dtype=torch.float64)
    expected = (
        0.5 * math.log1p(math.exp(-1))
        + 2 / 3 * math.log1p(math.exp(2))
        + 1 / 6 * math.log1p(math.e)
    ) / 3
    assert abs(expected - 0.597819933013599) < 1e-12
    assert abs(float(lambda_mrr_loss(scores, relevance)) - expected) < 1e-12


def test_gradcheck() -> None:
    generator = torch.Generator().manual_seed(2)
    scores = torch.randn(3, 5, generator=generator, dtype=torch.float64).requires_grad_()
    relevance = inverse_rank_relevance(3, 5, generator)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 1, 1, 0]], dtype=torch.bool)
    assert torch.autograd.gradcheck(lambda x: lambda_mrr_loss(x, relevance), (scores,))
    assert torch.autograd.gradcheck(lambda x: lambda_mrr_loss(x, relevance, mask), (scores,))


def test_perfect_order_beats_reversed_order() -> None:
    k = 6
    relevance = 1.0 / torch.arange(1, k + 1, dtype=torch.float64)[None]
    perfect = torch.arange(k, 0, -1, dtype=torch.float64)[None]
    assert float(lambda_mrr_loss(perfect, relevance)) < float(
        lambda_mrr_loss(perfect.flip(-1), relevance)
    )


def test_no_valid_pair_gives_zero_where_udr_gives_nan() -> None:
    case = _case("no_valid_pair")
    scores = _tensor(case["scores"], case["dtype"]).requires_grad_()
    relevance = _tensor(case["y_true"], case["dtype"])
    assert bool((relevance == relevance[0, 0]).all())  # all tied
    assert case["udr"]["mean"] is None  # UDR's NaN
    loss = lambda_mrr_loss(scores, relevance)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(scores.grad, torch.zeros_like(scores))


def test_feedback_to_relevance_ranks_with_shared_ties_and_padding() -> None:
    feedback = torch.tensor([[0.3, 0.9, 0.3, -1.0], [5.0, 1.0, 9.0, 2.0]])
    mask = torch.tensor([[True, True, True, True], [True, True, False, True]])
    expected = torch.tensor([[1 / 2, 1.0, 1 / 2, 1 / 4], [1.0, 1 / 3, 1.0, 1 / 2]])
    torch.testing.assert_close(feedback_to_relevance(feedback, mask), expected)


def test_module_from_feedback_and_registry() -> None:
    generator = torch.Generator().manual_seed(9)
    scores = torch.randn(3, 6, generator=generator)
    feedback = torch.randn(3, 6, generator=generator)
    mask = torch.rand(3, 6, generator=generator) > 0.2
    loss = RANKING_LOSSES["lambda"]()(scores, feedback, mask)
    assert RANKING_LOSSES["lambda"] is LambdaMRRLoss
    # Only the order of the relevance matters, so 1/rank and raw feedback agree.
    torch.testing.assert_close(loss, lambda_mrr_loss(scores, feedback, mask))
    torch.testing.assert_close(
        loss, lambda_mrr_loss(scores, feedback_to_relevance(feedback, mask), mask)
    )

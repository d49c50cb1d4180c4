"""UDR's lambda-MRR list loss: equals UDR's own code, a naive loop and a hand value; gradients."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor as T
from torch import nn

from drum.losses import RANKING_LOSSES
from drum.losses.lambda_rank import (
    LambdaMRRLoss,
    UDRLoss,
    feedback_to_relevance,
    lambda_mrr_loss,
    udr_loss,
)


# ---------------------------------------------------------------------------------------------
# REFERENCE: verbatim transcription of UDR's code, used only as ground truth below.
# Repository github.com/KaiLv69/UDR, commit e7a5caae60f0638d770dc4a46c52a1369d0aca7f,
# file DPR/dpr/models/biencoder.py: ``dot_product_scores``, ``lambda_mrr_loss`` and
# ``BiEncoder_list_ranking_loss``. Changes: ``lambda_mrr_loss`` renamed ``udr_lambda_mrr_loss``
# (also at its call in ``calc``), commented-out logging/debug lines dropped, ``noqa`` added.
# ---------------------------------------------------------------------------------------------
# fmt: off
def dot_product_scores(q_vectors: T, ctx_vectors: T) -> T:
    """
    calculates q->ctx scores for every row in ctx_vector
    :param q_vector:
    :param ctx_vector:
    :return:
    """
    # q_vector: n1 x D, ctx_vectors: n2 x D, result n1 x n2
    r = torch.matmul(q_vectors, torch.transpose(ctx_vectors, 0, 1))
    return r


def udr_lambda_mrr_loss(y_pred, y_true, eps=1e-10, padded_value_indicator=-1, reduction="mean"):
    """
    y_pred: FloatTensor [bz, topk]
    y_true: FloatTensor [bz, topk]
    """
    device = y_pred.device
    y_pred = y_pred.clone()
    y_true = y_true.clone()
    clamp_val = 1e8 if y_pred.dtype==torch.float32 else 1e4  # noqa: F841

    padded_mask = y_true == padded_value_indicator
    y_pred[padded_mask] = float("-inf")
    y_true[padded_mask] = float("-inf")
    #assert torch.sum(padded_mask) == 0

    # Here we sort the true and predicted relevancy scores.
    y_pred_sorted, indices_pred = y_pred.sort(descending=True, dim=-1)

    # After sorting, we can mask out the pairs of indices (i, j) containing index of a padded element.  # noqa: E501
    true_sorted_by_preds = torch.gather(y_true, dim=1, index=indices_pred)
    true_diffs = true_sorted_by_preds[:, :, None] - true_sorted_by_preds[:, None, :]
    padded_pairs_mask = torch.isfinite(true_diffs)
    padded_pairs_mask = padded_pairs_mask & (true_diffs > 0)

    # Here we clamp the -infs to get correct gains and ideal DCGs (maxDCGs)
    true_sorted_by_preds.clamp_(min=0.)

    # Here we find the gains, discounts and ideal DCGs per slate.
    inv_pos_idxs = 1. / torch.arange(1, y_pred.shape[1] + 1).to(device)
    weights = torch.abs(inv_pos_idxs.view(1,-1,1) - inv_pos_idxs.view(1,1,-1)) # [1, topk, topk]

    # We are clamping the array entries to maintain correct backprop (log(0) and division by 0)
    scores_diffs = (y_pred_sorted[:, :, None] - y_pred_sorted[:, None, :]).clamp(min=-50, max=50)
    scores_diffs.masked_fill_(torch.isnan(scores_diffs), 0.)
    scores_diffs_exp = torch.exp(-scores_diffs)
    # scores_diffs_exp = scores_diffs_exp.clamp(min=-clamp_val, max=clamp_val)
    losses = torch.log(1. + scores_diffs_exp) * weights #[bz, topk, topk]

    if reduction == "sum":
        loss = torch.sum(losses[padded_pairs_mask])
    elif reduction == "mean":
        loss = torch.mean(losses[padded_pairs_mask])
    else:
        raise ValueError("Reduction method can be either sum or mean")

    return loss

class BiEncoder_list_ranking_loss:
    @staticmethod
    def get_scores(q_vector: T, ctx_vectors: T) -> T:
        f = BiEncoder_list_ranking_loss.get_similarity_function()
        return f(q_vector, ctx_vectors)

    @staticmethod
    def get_similarity_function():
        return dot_product_scores

    def calc(self,
             q_vectors: T,
             ctx_vectors: T,
             rank_loss_factor
             ):
        scores = self.get_scores(q_vectors, ctx_vectors) # [n1,n2], n1 is batch_size of query, n2=batch_size * rank_candidate_num  # noqa: E501
        batch_size = scores.size(0)
        scores_3d = scores.view(batch_size,batch_size,-1)
        #scires_3d: [bs,bs,rank_candidate_num]
        rank_candidate_num = scores_3d.size(-1)


        rank_score_prediction = torch.diagonal(scores_3d)
        #rank_score_prediction:[rank_candidate_num,bs]
        rank_score_prediction = torch.transpose(rank_score_prediction,1,0)
        # rank_score_prediction:[bs,rank_candidate_num]

        rank_gt = 1/torch.arange(1,1+rank_candidate_num).view(1,-1).repeat(batch_size,1).to(q_vectors)  # noqa: E501

        list_ranking_loss = udr_lambda_mrr_loss(rank_score_prediction,rank_gt)

        # positive_score = rank_score_prediction[:,0]

        # start calculating in-batch negative loss
        scores_2d = scores
        #scores_2d [n1,n2]
        in_batch_gt = (torch.arange(0,batch_size,dtype=torch.long)*int(rank_candidate_num)).to(q_vectors.device)  # noqa: E501
        crossentropy_loss_fct = nn.CrossEntropyLoss()
        in_batch_negative_loss = crossentropy_loss_fct(scores_2d,in_batch_gt)

        total_loss = list_ranking_loss*rank_loss_factor + in_batch_negative_loss

        return total_loss,list_ranking_loss.item(), in_batch_negative_loss.item()
# fmt: on
# ------------------------------------------ end of REFERENCE ---------------------------------


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


@pytest.mark.parametrize(("batch", "k"), [(1, 2), (3, 5), (4, 8), (2, 16)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_udr_reference(batch: int, k: int, dtype: torch.dtype) -> None:
    generator = torch.Generator().manual_seed(batch * 100 + k)
    scores = (3 * torch.randn(batch, k, generator=generator)).to(dtype)
    relevance = inverse_rank_relevance(batch, k, generator).to(dtype)
    # 1e-6 even in float64: UDR builds its 1/position weights in float32 whatever the input
    # dtype (``1. / torch.arange(...)``), which moves its float64 result by ~1e-9.
    tol = 1e-6
    for reduction in ("mean", "sum"):
        expected = udr_lambda_mrr_loss(scores, relevance, reduction=reduction)
        actual = lambda_mrr_loss(scores, relevance, reduction=reduction)
        torch.testing.assert_close(actual, expected, atol=tol, rtol=tol)


def test_matches_udr_reference_with_relevance_ties_and_large_gaps() -> None:
    generator = torch.Generator().manual_seed(7)
    scores = 40 * torch.randn(5, 9, generator=generator)  # many differences beyond +-50
    relevance = torch.randint(0, 3, (5, 9), generator=generator).float()  # lots of ties
    relevance[0] = torch.tensor([2.0, 0, 0, 1, 1, 2, 0, 1, 2])  # at least one valid pair
    torch.testing.assert_close(
        lambda_mrr_loss(scores, relevance), udr_lambda_mrr_loss(scores, relevance)
    )


def test_matches_udr_reference_with_padding() -> None:
    generator = torch.Generator().manual_seed(3)
    scores = torch.randn(4, 7, generator=generator)
    relevance = 1.0 / (torch.randint(1, 8, (4, 7), generator=generator).float())
    mask = torch.rand(4, 7, generator=generator) > 0.3
    mask[:, :2] = True
    relevance[:, 0], relevance[:, 1] = 1.0, 0.5
    udr_relevance = relevance.masked_fill(~mask, -1.0)  # UDR marks padding with y_true == -1
    expected = udr_lambda_mrr_loss(scores, udr_relevance)
    torch.testing.assert_close(lambda_mrr_loss(scores, relevance, mask), expected)
    # Padded slots carry no information: changing their scores changes nothing.
    noisy = scores.masked_fill(~mask, 100.0)
    torch.testing.assert_close(lambda_mrr_loss(noisy, relevance, mask), expected)


def test_gradient_matches_udr_reference() -> None:
    generator = torch.Generator().manual_seed(11)
    base = torch.randn(3, 6, generator=generator, dtype=torch.float64)
    relevance = inverse_rank_relevance(3, 6, generator)
    ours = base.clone().requires_grad_()
    theirs = base.clone().requires_grad_()
    lambda_mrr_loss(ours, relevance).backward()
    udr_lambda_mrr_loss(theirs, relevance).backward()
    torch.testing.assert_close(ours.grad, theirs.grad)


def test_udr_objective_matches_reference_calc() -> None:
    generator = torch.Generator().manual_seed(5)
    batch, k, dim = 3, 5, 8
    queries = torch.randn(batch, dim, generator=generator, dtype=torch.float64)
    contexts = torch.randn(batch * k, dim, generator=generator, dtype=torch.float64)
    # UDR's lists are sorted by LVLM rank: any strictly decreasing feedback says the same.
    feedback = -torch.arange(k, dtype=torch.float64).repeat(batch, 1)
    total, list_term, contrastive = BiEncoder_list_ranking_loss().calc(queries, contexts, 4)
    out = udr_loss(queries @ contexts.T, feedback, list_weight=4.0)
    torch.testing.assert_close(out.loss, total, atol=1e-6, rtol=1e-6)
    assert abs(out.list_loss.item() - list_term) < 1e-6  # UDR's float32 weights, as above
    assert abs(out.contrastive_loss.item() - contrastive) < 1e-12
    module_out = UDRLoss()(queries @ contexts.T, feedback)
    torch.testing.assert_close(module_out.loss, out.loss)  # list_weight defaults to UDR's 4

    # Shuffling each query's list (vectors and feedback together) must not matter.
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
    scores = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    relevance = torch.ones(2, 3, dtype=torch.float64)  # all tied
    assert torch.isnan(udr_lambda_mrr_loss(scores, relevance))
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

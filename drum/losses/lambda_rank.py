"""UDR's list-wise LambdaRank loss with an MRR-style weight, and UDR's full training objective
(``udr_loss``; ``udr_objective`` is its general form, the one the retriever trains with).

Reference: Li et al., "Unified Demonstration Retriever for In-Context Learning" (UDR, ACL 2023),
code at github.com/KaiLv69/UDR (commit e7a5caae60f0638d770dc4a46c52a1369d0aca7f):
``lambda_mrr_loss`` and ``BiEncoder_list_ranking_loss.calc`` in ``DPR/dpr/models/biencoder.py``;
candidate sampling in ``EPRDataset.get_entry`` of ``DPR/dpr/data/biencoder_data.py``; the list
weight ``rank_loss_factor=4`` in ``scripts/train_iter{0,1,2}.sh``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

# UDR clamps score differences to this range before ``exp`` so float32 cannot overflow.
_DIFF_CLAMP = 50.0


def _check_pair(scores: torch.Tensor, other: torch.Tensor, mask: torch.Tensor | None) -> None:
    if scores.dim() != 2 or other.shape != scores.shape:
        raise ValueError(
            f"scores {tuple(scores.shape)} and relevance/feedback {tuple(other.shape)} "
            "must be the same (B, K)"
        )
    if mask is not None and (mask.shape != scores.shape or mask.dtype != torch.bool):
        raise ValueError(f"mask must be a bool (B, K) tensor, got {mask.dtype} {tuple(mask.shape)}")


def feedback_to_relevance(feedback: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``1 / rank`` of each candidate under the LVLM's feedback (higher feedback = rank 1).

    Ties share the best rank ("1224" competition ranking), so equally good candidates get equal
    relevance and form no pair in ``lambda_mrr_loss``. Padded candidates (``mask`` False) do not
    count towards anyone's rank; their own value is meaningless.

    Args:
        feedback: ``(B, K)`` LVLM scores, higher is better.
        mask: optional ``(B, K)`` bool, True for real candidates.

    Returns:
        ``(B, K)`` relevance in ``(0, 1]``, in ``feedback``'s dtype if floating.
    """
    _check_pair(feedback, feedback, mask)
    valid = torch.ones_like(feedback, dtype=torch.bool) if mask is None else mask
    # beats[b, i, j]: real candidate j has strictly higher feedback than candidate i.
    beats = (feedback[:, None, :] > feedback[:, :, None]) & valid[:, None, :]
    ranks = 1 + beats.sum(dim=-1)
    dtype = feedback.dtype if feedback.is_floating_point() else torch.get_default_dtype()
    return 1.0 / ranks.to(dtype)


def lambda_mrr_loss(
    scores: torch.Tensor,
    relevance: torch.Tensor,
    mask: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """UDR's ``lambda_mrr_loss``: pairwise logistic loss weighted by the change in 1/position.

    Sort each query's candidates by the predicted ``scores`` (descending); let ``s_i`` and ``y_i``
    be the score and relevance at 1-based predicted position ``i``. Over the pairs
    ``P = {(b, i, j) : y_i > y_j, both real}`` of every query ``b``::

        loss = mean_{(b,i,j) in P}  |1/i - 1/j| * log(1 + exp(-clamp(s_i - s_j, -50, 50)))

    i.e. a flat mean over all valid pairs of the batch (``reduction="sum"`` sums instead).

    Differences from UDR's function; beyond rounding, values differ only where UDR's is NaN or
    depends on the unspecified order of tied predictions:

    * padding is a bool ``mask`` (True = real) instead of ``y_true == -1``; padded candidates still
      sort last, so real ones keep positions ``1..n_real``;
    * the predicted order uses a stable sort, so tied predictions are ordered by index (UDR's
      ``sort`` does not promise an order for ties, which changes the weights);
    * with no valid pair the loss is 0 (with a zero gradient) rather than UDR's NaN;
    * ``log1p(exp(-d))`` replaces ``log(1 + exp(-d))``: the same value, rounded better;
    * the ``1/position`` weights are in ``scores``' dtype; UDR builds them in the default dtype
      (float32) even for float64 scores, so float64 results differ from UDR's by ~1e-9.

    Only the order of ``relevance`` matters (it enters through ``y_i > y_j``), so passing raw
    LVLM scores gives the same loss as UDR's ``1 / rank`` up to how ties are ranked.

    Args:
        scores: ``(B, K)`` predicted similarities of each query to its ``K`` candidates; use
            float32 or wider, as ``exp(50)`` overflows float16 (as in UDR).
        relevance: ``(B, K)`` ground-truth relevance, higher is better; UDR uses
            ``1 / LVLM-rank`` (see ``feedback_to_relevance``).
        mask: optional ``(B, K)`` bool, True for real candidates.
        reduction: ``"mean"`` over valid pairs (UDR's default) or ``"sum"``.

    References:
        UDR (Li et al., ACL 2023), ``DPR/dpr/models/biencoder.py::lambda_mrr_loss``;
        LambdaLoss (Wang et al., CIKM 2018) for the position-difference weighting.
    """
    _check_pair(scores, relevance, mask)
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    valid = torch.ones_like(scores, dtype=torch.bool) if mask is None else mask
    num_candidates = scores.shape[1]

    # -inf sends padded candidates to the end without disturbing the order of real ones.
    order = scores.detach().masked_fill(~valid, float("-inf"))
    order = order.argsort(dim=-1, descending=True, stable=True)
    scores_sorted = scores.gather(1, order)
    relevance_sorted = relevance.gather(1, order)
    valid_sorted = valid.gather(1, order)

    pairs = relevance_sorted[:, :, None] > relevance_sorted[:, None, :]
    pairs = pairs & valid_sorted[:, :, None] & valid_sorted[:, None, :]

    inv_positions = 1.0 / torch.arange(
        1, num_candidates + 1, device=scores.device, dtype=scores.dtype
    )
    weights = (inv_positions[:, None] - inv_positions[None, :]).abs()
    diffs = (scores_sorted[:, :, None] - scores_sorted[:, None, :]).clamp(-_DIFF_CLAMP, _DIFF_CLAMP)
    # Not F.softplus: its linear branch above 20 would drift from UDR by up to exp(-20).
    losses = torch.log1p(torch.exp(-diffs)) * weights

    # torch.where (not boolean indexing) keeps the graph connected when there is no pair.
    total = torch.where(pairs, losses, torch.zeros_like(losses)).sum()
    if reduction == "sum":
        return total
    return total / pairs.sum().clamp(min=1)


class UDRLossOutput(NamedTuple):
    """The total UDR objective and its two terms (before weighting)."""

    loss: torch.Tensor
    list_loss: torch.Tensor
    contrastive_loss: torch.Tensor


def udr_loss(
    scores: torch.Tensor,
    feedback: torch.Tensor,
    mask: torch.Tensor | None = None,
    list_weight: float = 4.0,
) -> UDRLossOutput:
    """UDR's training objective: in-batch contrastive loss plus ``list_weight`` x the list loss.

    ``scores`` holds every query against every candidate of the batch, flattened query-major
    (candidate ``k`` of query ``c`` is column ``c * K + k``), as ``q @ ctx.T`` gives it. With
    ``S[b] = scores[b, b*K:(b+1)*K]`` (a query against its own list) and ``t_b`` the index of
    its LVLM-best candidate::

        list_loss        = lambda_mrr_loss(S, feedback_to_relevance(feedback))
        contrastive_loss = mean_b CE(scores[b, :], target = b*K + t_b)
        loss             = contrastive_loss + list_weight * list_loss

    The contrastive negatives are all other candidates in the batch, the query's own lower
    ranked candidates included.

    Differences from UDR's ``BiEncoder_list_ranking_loss.calc``: UDR takes the encoder vectors
    and assumes each list is already sorted by LVLM rank (``EPRDataset`` sorts the sampled
    candidates by their LVLM-ranked index), so its relevance is ``1 / position`` and its
    positive is column ``b*K``. Here the candidates may come in any order: relevance and the
    positive come from ``feedback`` (the first maximum wins a tie). Padded candidates (``mask``
    False) are dropped from every softmax; UDR has none. UDR's default weight is 4
    (``rank_loss_factor=4`` in ``scripts/train_iter*.sh``; the dataset YAML default is 1).

    Args:
        scores: ``(B, B*K)`` similarities of each query to every candidate in the batch.
        feedback: ``(B, K)`` LVLM scores of each query's own candidates, higher is better.
        mask: optional ``(B, K)`` bool, True for real candidates; every row needs one.
        list_weight: weight of the list loss (UDR's ``rank_loss_factor``).
    """
    if feedback.dim() != 2:
        raise ValueError(f"feedback must be (B, K), got {tuple(feedback.shape)}")
    batch, num_candidates = feedback.shape
    if scores.shape != (batch, batch * num_candidates):
        raise ValueError(
            f"scores {tuple(scores.shape)} must be (B, B*K) = ({batch}, {batch * num_candidates})"
        )
    # Diagonal blocks: each query against its own candidate list.
    own = scores.view(batch, batch, num_candidates).diagonal(dim1=0, dim2=1).T
    return udr_objective(own, scores, feedback, mask, list_weight=list_weight)


ListLoss = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


def udr_objective(
    list_scores: torch.Tensor,
    batch_scores: torch.Tensor,
    feedback: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    list_weight: float = 4.0,
    contrastive_weight: float = 1.0,
    list_loss: ListLoss | None = None,
) -> UDRLossOutput:
    """``udr_loss`` with each query's own scores given apart, a contrastive weight and any
    list loss: what the retriever trains with (``udr_loss`` is this on ``scores``' diagonal
    blocks, with the defaults)::

        list_loss        = list_loss(list_scores, feedback, mask)     (LambdaMRR by default)
        contrastive_loss = mean_b CE(batch_scores[b, :], target = b*K + t_b)
        loss             = list_weight * list_loss + contrastive_weight * contrastive_loss

    (no contrastive term at all when ``contrastive_weight`` is 0). ``list_scores`` may be
    computed apart from ``batch_scores`` (the trainer takes them from a batched product,
    whose float rounding differs from the full matrix's diagonal).

    Args:
        list_scores: ``(B, K)`` each query against its own candidates.
        batch_scores: ``(B, B*K)`` each query against every candidate of the batch,
            query-major (candidate ``k`` of query ``c`` is column ``c * K + k``).
        feedback: ``(B, K)`` LVLM scores of each query's own candidates, higher is better;
            ``t_b`` is the first maximum among the real candidates.
        mask: optional ``(B, K)`` bool, True for real candidates; every row needs one.
        list_weight, contrastive_weight: the terms' weights.
        list_loss: ``(scores, feedback, mask) -> scalar`` (a ``RANKING_LOSSES`` module);
            ``None``: ``lambda_mrr_loss`` on ``feedback_to_relevance(feedback)``.
    """
    _check_pair(list_scores, feedback, mask)
    batch, num_candidates = feedback.shape
    if batch_scores.shape != (batch, batch * num_candidates):
        raise ValueError(
            f"batch_scores {tuple(batch_scores.shape)} must be (B, B*K) = "
            f"({batch}, {batch * num_candidates})"
        )
    valid = torch.ones_like(feedback, dtype=torch.bool) if mask is None else mask
    if not bool(valid.any(dim=1).all()):
        raise ValueError("every query needs at least one real candidate")

    if list_loss is None:
        list_term = lambda_mrr_loss(list_scores, feedback_to_relevance(feedback, mask), mask)
    else:
        list_term = list_loss(list_scores, feedback, mask)
    loss = list_weight * list_term
    if not contrastive_weight:
        return UDRLossOutput(loss, list_term, torch.zeros_like(list_term))

    best = feedback.masked_fill(~valid, float("-inf")).argmax(dim=1)
    targets = torch.arange(batch, device=batch_scores.device) * num_candidates + best
    logits = batch_scores
    if mask is not None:  # padded candidates leave every softmax
        logits = batch_scores.masked_fill(~mask.reshape(1, -1), float("-inf"))
    contrastive_term = F.cross_entropy(logits, targets)
    # ``a + b`` is exact in either order: this is UDR's ``contrastive + list_weight * list``.
    loss = loss + contrastive_weight * contrastive_term
    return UDRLossOutput(loss, list_term, contrastive_term)


class LambdaMRRLoss(nn.Module):
    """``nn.Module`` wrapper of ``lambda_mrr_loss`` taking raw LVLM feedback.

    ``forward(scores, feedback, mask=None)`` ranks each query's candidates by ``feedback``
    (higher is better, ties share a rank), sets ``y = 1 / rank`` and returns
    ``lambda_mrr_loss(scores, y, mask)``::

        loss = mean_{(b,i,j): y_i > y_j} |1/i - 1/j| * log(1 + exp(-(s_i - s_j)))

    with ``i, j`` 1-based positions in the order predicted by ``scores``.

    Inputs: ``scores`` ``(B, K)`` predicted similarities, ``feedback`` ``(B, K)`` LVLM scores,
    ``mask`` optional ``(B, K)`` bool (True = real candidate). Returns a scalar.

    References: UDR (Li et al., ACL 2023), github.com/KaiLv69/UDR
    ``DPR/dpr/models/biencoder.py::lambda_mrr_loss``.
    """

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = reduction

    def forward(
        self, scores: torch.Tensor, feedback: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        relevance = feedback_to_relevance(feedback, mask)
        return lambda_mrr_loss(scores, relevance, mask, reduction=self.reduction)


class UDRLoss(nn.Module):
    """``nn.Module`` wrapper of ``udr_loss``: UDR's contrastive + weighted list objective.

    ``forward(scores, feedback, mask=None)`` with ``scores`` ``(B, B*K)`` (each query against
    every candidate in the batch, flattened query-major), ``feedback`` ``(B, K)`` LVLM scores
    and ``mask`` optional ``(B, K)`` bool returns ``UDRLossOutput(loss, list_loss,
    contrastive_loss)`` where ``loss = contrastive_loss + list_weight * list_loss``.

    References: UDR (Li et al., ACL 2023), github.com/KaiLv69/UDR
    ``DPR/dpr/models/biencoder.py::BiEncoder_list_ranking_loss``.
    """

    def __init__(self, list_weight: float = 4.0) -> None:
        super().__init__()
        self.list_weight = list_weight

    def forward(
        self, scores: torch.Tensor, feedback: torch.Tensor, mask: torch.Tensor | None = None
    ) -> UDRLossOutput:
        return udr_loss(scores, feedback, mask, list_weight=self.list_weight)

"""ListMLE: the Plackett-Luce likelihood of the LVLM's ranking under the retriever's scores."""

from __future__ import annotations

import torch
from torch import nn


def listmle_loss(
    scores: torch.Tensor, feedback: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Negative Plackett-Luce log-likelihood of the teacher's order, mean over queries.

    With ``pi`` the real candidates of query ``b`` sorted by ``feedback`` descending and ``n``
    their number::

        loss_b = -sum_{i=1..n} [ s_{pi_i} - logsumexp_{j >= i} s_{pi_j} ]
        loss   = mean_b loss_b

    Ties in ``feedback`` are broken by a stable sort, i.e. the tied candidate with the lower
    index counts as better; the loss is therefore not symmetric in tied candidates. Padded
    candidates (``mask`` False) are left out; a query with no real candidate is left out of
    the mean (0 if all are). ``feedback`` should be finite.

    Args:
        scores: ``(B, K)`` predicted similarities ``s``.
        feedback: ``(B, K)`` LVLM scores, higher is better; only their order is used.
        mask: optional ``(B, K)`` bool, True for real candidates.

    References:
        Xia et al., "Listwise Approach to Learning to Rank: Theory and Algorithm" (ListMLE,
        ICML 2008).
    """
    if scores.dim() != 2 or feedback.shape != scores.shape:
        raise ValueError(
            f"scores {tuple(scores.shape)} and feedback {tuple(feedback.shape)} must be (B, K)"
        )
    if mask is None:
        valid = torch.ones_like(scores, dtype=torch.bool)
    elif mask.shape != scores.shape or mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool (B, K) tensor, got {mask.dtype} {tuple(mask.shape)}")
    else:
        valid = mask

    # -inf puts padded candidates after every real one, so each real tail holds only real items.
    order = feedback.detach().masked_fill(~valid, float("-inf"))
    order = order.argsort(dim=-1, descending=True, stable=True)
    scores_sorted = scores.gather(1, order)
    valid_sorted = valid.gather(1, order)

    # logsumexp over each suffix j >= i: a reversed cumulative logsumexp.
    masked = scores_sorted.masked_fill(~valid_sorted, float("-inf"))
    suffix_lse = masked.flip(-1).logcumsumexp(dim=-1).flip(-1)
    terms = torch.where(valid_sorted, scores_sorted - suffix_lse, torch.zeros_like(scores_sorted))
    per_query = -terms.sum(dim=1)

    has_any = valid.any(dim=1)
    return per_query.sum() / has_any.sum().clamp(min=1)


class ListMLELoss(nn.Module):
    """``nn.Module`` wrapper of ``listmle_loss``::

        loss = mean_b -sum_i [ s_{pi_i} - logsumexp_{j >= i} s_{pi_j} ]

    with ``pi`` each query's candidates sorted by LVLM feedback descending (stable for ties).

    ``forward(scores, feedback, mask=None)``: ``scores`` ``(B, K)`` predicted similarities,
    ``feedback`` ``(B, K)`` LVLM scores (higher is better), ``mask`` optional ``(B, K)`` bool
    (True = real candidate). Returns a scalar.

    References: ListMLE (Xia et al., ICML 2008).
    """

    def forward(
        self, scores: torch.Tensor, feedback: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return listmle_loss(scores, feedback, mask)

"""ListNet / KL distillation of the LVLM's feedback distribution into the retriever (LLM-R)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _valid_mask(
    scores: torch.Tensor, feedback: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    if scores.dim() != 2 or feedback.shape != scores.shape:
        raise ValueError(
            f"scores {tuple(scores.shape)} and feedback {tuple(feedback.shape)} must be (B, K)"
        )
    if mask is None:
        return torch.ones_like(scores, dtype=torch.bool)
    if mask.shape != scores.shape or mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool (B, K) tensor, got {mask.dtype} {tuple(mask.shape)}")
    return mask


def listnet_loss(
    scores: torch.Tensor,
    feedback: torch.Tensor,
    mask: torch.Tensor | None = None,
    temperature: float = 1.0,
    teacher_temperature: float = 1.0,
) -> torch.Tensor:
    """KL from the LVLM's softmax over candidates to the retriever's, mean over queries.

    Per query ``b`` over its real candidates::

        p_b = softmax(feedback[b] / teacher_temperature)      # teacher (LVLM)
        q_b = softmax(scores[b] / temperature)                # student (retriever)
        loss = mean_b KL(p_b || q_b) = mean_b sum_k p_bk (log p_bk - log q_bk)

    Up to the teacher's entropy (a constant in ``scores``) this is ListNet's top-one
    cross-entropy. Padded candidates (``mask`` False) are left out of both softmaxes; a query
    with no real candidate contributes nothing and is left out of the mean (0 if all are).
    ``feedback`` is treated as a target but not detached: pass it without grad.

    Args:
        scores: ``(B, K)`` predicted similarities.
        feedback: ``(B, K)`` LVLM scores, higher is better (e.g. log-likelihood of the answer).
        mask: optional ``(B, K)`` bool, True for real candidates.
        temperature: student temperature ``tau``.
        teacher_temperature: teacher temperature ``tau_teacher``.

    References:
        Cao et al., "Learning to Rank: From Pairwise Approach to Listwise Approach" (ListNet,
        ICML 2007); Wang et al., "Learning to Retrieve In-Context Examples for Large Language
        Models" (LLM-R, EACL 2024), whose reward-model distillation is this KL term.
    """
    valid = _valid_mask(scores, feedback, mask)
    has_any = valid.any(dim=1)
    # A fully padded row would make log_softmax NaN; treat it as unpadded, then drop it below.
    valid = valid | ~has_any[:, None]

    neg_inf = float("-inf")
    log_p = F.log_softmax((feedback / teacher_temperature).masked_fill(~valid, neg_inf), dim=1)
    log_q = F.log_softmax((scores / temperature).masked_fill(~valid, neg_inf), dim=1)
    # Zero the -inf log-probs of padded slots first: -inf - -inf is NaN, and a NaN in either
    # operand would leak into the gradient even through torch.where.
    log_p = log_p.masked_fill(~valid, 0.0)
    log_q = log_q.masked_fill(~valid, 0.0)
    per_query = (log_p.exp() * (log_p - log_q)).sum(dim=1)
    per_query = per_query * has_any.to(per_query.dtype)
    return per_query.sum() / has_any.sum().clamp(min=1)


class ListNetLoss(nn.Module):
    """``nn.Module`` wrapper of ``listnet_loss``::

        loss = mean_b KL( softmax(feedback[b] / tau_teacher) || softmax(scores[b] / tau) )

    ``forward(scores, feedback, mask=None)``: ``scores`` ``(B, K)`` predicted similarities,
    ``feedback`` ``(B, K)`` LVLM scores (higher is better), ``mask`` optional ``(B, K)`` bool
    (True = real candidate). Returns a scalar.

    References: ListNet (Cao et al., ICML 2007); LLM-R (Wang et al., EACL 2024).
    """

    def __init__(self, temperature: float = 1.0, teacher_temperature: float = 1.0) -> None:
        super().__init__()
        self.temperature = temperature
        self.teacher_temperature = teacher_temperature

    def forward(
        self, scores: torch.Tensor, feedback: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return listnet_loss(
            scores,
            feedback,
            mask,
            temperature=self.temperature,
            teacher_temperature=self.teacher_temperature,
        )

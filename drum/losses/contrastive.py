"""CLIP's symmetric contrastive loss, generalised to several positives per row."""

from __future__ import annotations

import torch
from torch import nn


def multi_positive_contrastive_loss(logits: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE where every pair marked in ``positives`` counts as a match.

    With ``L = logits`` (image i vs text j, already scaled by the temperature) and the
    positive set ``P(i) = {j : positives[i, j]}``::

        loss_i2t = -mean_i log( sum_{j in P(i)} softmax(L[i, :])_j )
        loss_t2i = -mean_j log( sum_{i in P^T(j)} softmax(L[:, j])_i )
        loss     = (loss_i2t + loss_t2i) / 2

    With ``positives = eye(B)`` this is exactly CLIP's loss. Several positives matter when a
    batch holds images with the same caption (the built-in world has only 180 distinct ones):
    plain CLIP would push those true matches apart.

    Args:
        logits: ``(B, B)`` scaled similarities, rows images, columns texts.
        positives: ``(B, B)`` bool; every row and column needs at least one True.
    """
    if logits.shape != positives.shape or logits.dim() != 2:
        raise ValueError(f"logits {tuple(logits.shape)} and positives must be the same (B, B)")
    masked = logits.masked_fill(~positives, float("-inf"))
    image_to_text = torch.logsumexp(logits, dim=1) - torch.logsumexp(masked, dim=1)
    text_to_image = torch.logsumexp(logits, dim=0) - torch.logsumexp(masked, dim=0)
    return (image_to_text.mean() + text_to_image.mean()) / 2


class MultiPositiveContrastiveLoss(nn.Module):
    """``nn.Module`` wrapper of ``multi_positive_contrastive_loss`` over embeddings.

    ``forward(image_embeds, text_embeds, positives, logit_scale)`` computes
    ``logits = exp(logit_scale) * image_embeds @ text_embeds.T`` (embeddings L2-normalised),
    then the loss above.
    """

    def forward(
        self,
        image_embeds: torch.Tensor,
        text_embeds: torch.Tensor,
        positives: torch.Tensor,
        logit_scale: torch.Tensor,
    ) -> torch.Tensor:
        image_embeds = nn.functional.normalize(image_embeds, dim=-1)
        text_embeds = nn.functional.normalize(text_embeds, dim=-1)
        logits = logit_scale.exp() * image_embeds @ text_embeds.T
        return multi_positive_contrastive_loss(logits, positives)

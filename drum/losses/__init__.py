"""Training losses, one per module: each an ``nn.Module`` over a pure function.

``RANKING_LOSSES`` maps a name to a list-wise ranking loss class whose
``forward(scores_pred (B, K), feedback (B, K), mask (B, K) | None)`` returns a scalar;
``feedback`` is the LVLM's score of each candidate, higher is better.
"""

from torch import nn

from drum.losses.contrastive import MultiPositiveContrastiveLoss, multi_positive_contrastive_loss
from drum.losses.lambda_rank import (
    LambdaMRRLoss,
    UDRLoss,
    UDRLossOutput,
    feedback_to_relevance,
    lambda_mrr_loss,
    udr_loss,
    udr_objective,
)
from drum.losses.listmle import ListMLELoss, listmle_loss
from drum.losses.listnet import ListNetLoss, listnet_loss

RANKING_LOSSES: dict[str, type[nn.Module]] = {
    "lambda": LambdaMRRLoss,
    "listnet": ListNetLoss,
    "listmle": ListMLELoss,
}

__all__ = [
    "RANKING_LOSSES",
    "LambdaMRRLoss",
    "ListMLELoss",
    "ListNetLoss",
    "MultiPositiveContrastiveLoss",
    "UDRLoss",
    "UDRLossOutput",
    "feedback_to_relevance",
    "lambda_mrr_loss",
    "listmle_loss",
    "listnet_loss",
    "multi_positive_contrastive_loss",
    "udr_loss",
    "udr_objective",
]

"""Training losses, one per module: each an ``nn.Module`` over a pure function.

``RANKING_LOSSES`` (``drum.losses.registry``) maps a name to a list-wise ranking loss class.
The names below load lazily: ``import drum.losses`` imports no torch until one is used.
"""

from drum.utils.lazy import lazy_exports

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

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "RANKING_LOSSES": "drum.losses.registry",
        "MultiPositiveContrastiveLoss": "drum.losses.contrastive",
        "multi_positive_contrastive_loss": "drum.losses.contrastive",
        "LambdaMRRLoss": "drum.losses.lambda_rank",
        "UDRLoss": "drum.losses.lambda_rank",
        "UDRLossOutput": "drum.losses.lambda_rank",
        "feedback_to_relevance": "drum.losses.lambda_rank",
        "lambda_mrr_loss": "drum.losses.lambda_rank",
        "udr_loss": "drum.losses.lambda_rank",
        "udr_objective": "drum.losses.lambda_rank",
        "ListMLELoss": "drum.losses.listmle",
        "listmle_loss": "drum.losses.listmle",
        "ListNetLoss": "drum.losses.listnet",
        "listnet_loss": "drum.losses.listnet",
    },
)

"""Training losses, one per module: each an ``nn.Module`` over a pure function."""

from drum.losses.contrastive import MultiPositiveContrastiveLoss, multi_positive_contrastive_loss

__all__ = ["MultiPositiveContrastiveLoss", "multi_positive_contrastive_loss"]

"""Ranking losses by name: ``RANKING_LOSSES``, a ``drum.registry.Registry`` of lazy targets.

Each entry is a list-wise ranking loss class (an ``nn.Module``) whose
``forward(scores_pred (B, K), feedback (B, K), mask (B, K) | None)`` returns a scalar;
``feedback`` is the LVLM's score of each candidate, higher is better. Listing the names imports
no torch; ``RANKING_LOSSES.get("lambda")`` (or ``RANKING_LOSSES["lambda"]``) imports the class.
Register a loss of your own with ``RANKING_LOSSES.register("mine", "my.module:MyLoss")``.
"""

from __future__ import annotations

from drum.registry import Registry

RANKING_LOSSES = Registry("ranking loss")
RANKING_LOSSES.register("lambda", "drum.losses.lambda_rank:LambdaMRRLoss")
RANKING_LOSSES.register("listnet", "drum.losses.listnet:ListNetLoss")
RANKING_LOSSES.register("listmle", "drum.losses.listmle:ListMLELoss")

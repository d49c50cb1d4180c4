"""Metrics shared by every task and harness: VQA accuracy, CIDEr-D / BLEU-4 / ROUGE-L, label
accuracy (looked up by name through ``METRICS``, see ``registry``), and bootstrap confidence
intervals (``stats``).

Importing this package does not import pycocoevalcap: the caption metrics load on first use.
"""

from drum.metrics.registry import METRICS, TASK_METRICS, MetricSpec, get_metric, task_metrics
from drum.metrics.stats import bootstrap_ci, bootstrap_ci_corpus

__all__ = [
    "METRICS",
    "TASK_METRICS",
    "MetricSpec",
    "bootstrap_ci",
    "bootstrap_ci_corpus",
    "get_metric",
    "task_metrics",
]

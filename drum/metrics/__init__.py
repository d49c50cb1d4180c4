"""Metrics shared by every task and harness: VQA accuracy, CIDEr-D / BLEU-4 / ROUGE-L, label
accuracy (looked up by name through ``METRICS``, see ``registry``), and bootstrap confidence
intervals (``stats``).

The names below load lazily (PEP 562): importing the package imports none of its modules.
Listing ``METRICS`` does not import pycocoevalcap: the caption metrics load on first use.
"""

from drum.utils.lazy import lazy_exports

__all__ = [
    "METRICS",
    "MetricSpec",
    "TASK_METRICS",
    "bootstrap_ci",
    "bootstrap_ci_corpus",
    "get_metric",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "METRICS": "drum.metrics.registry",
        "TASK_METRICS": "drum.metrics.registry",
        "MetricSpec": "drum.metrics.registry",
        "get_metric": "drum.metrics.registry",
        "bootstrap_ci": "drum.metrics.stats",
        "bootstrap_ci_corpus": "drum.metrics.stats",
    },
)

"""Task metrics, looked up by name through ``METRICS`` (see ``registry``).

Importing this package does not import pycocoevalcap: the caption metrics load on first use.
"""

from drum.eval.metrics.registry import METRICS, TASK_METRICS, MetricSpec, get_metric, task_metrics

__all__ = ["METRICS", "TASK_METRICS", "MetricSpec", "get_metric", "task_metrics"]

"""LVLM feedback on candidate demonstrations: scoring, and its on-disk cache.

The names below load lazily (PEP 562): importing the package imports none of its modules.
"""

from drum.utils.lazy import lazy_exports

__all__ = [
    "FeedbackCache",
    "FeedbackConfig",
    "FeedbackRecord",
    "QueryFeedback",
    "score_feedback",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "FeedbackCache": "drum.feedback.cache",
        "FeedbackRecord": "drum.feedback.cache",
        "FeedbackConfig": "drum.feedback.scorer",
        "QueryFeedback": "drum.feedback.scorer",
        "score_feedback": "drum.feedback.scorer",
    },
)

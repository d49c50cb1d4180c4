"""LVLM feedback on candidate demonstrations: scoring, and its on-disk cache."""

from drum.feedback.cache import FeedbackCache, FeedbackRecord
from drum.feedback.scorer import FeedbackConfig, QueryFeedback, score_feedback

__all__ = ["FeedbackCache", "FeedbackConfig", "FeedbackRecord", "QueryFeedback", "score_feedback"]

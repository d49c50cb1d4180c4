"""Evaluation harnesses: few-shot ICL evaluation (``icl``) and its report rendering.

Scoring (metrics and bootstrap confidence intervals) lives in ``drum.metrics``.
"""

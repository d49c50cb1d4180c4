"""Evaluation: task metrics (VQA accuracy, CIDEr-D / BLEU-4 / ROUGE-L, label accuracy) and
bootstrap confidence intervals."""

from drum.eval.stats import bootstrap_ci, bootstrap_ci_corpus

__all__ = ["bootstrap_ci", "bootstrap_ci_corpus"]

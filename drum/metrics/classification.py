"""Label accuracy for classification-style tasks (one short label per example)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from drum.metrics.registry import MetricSpec

# Only sentence punctuation: stripping all of string.punctuation would turn "c++" into "c".
_TRAILING_PUNCTUATION = re.compile(r"[\s.,;:!?]+$")


def normalize_label(text: str) -> str:
    """Strip, lowercase, collapse whitespace runs to one space, drop trailing ``.,;:!?``.

    ``"  Golden   Retriever. "`` -> ``"golden retriever"``; ``"cat !?"`` -> ``"cat"``.
    """
    return _TRAILING_PUNCTUATION.sub("", " ".join(text.lower().split()))


def classification_accuracy(prediction: str, references: Sequence[str]) -> float:
    """``1.0`` if ``normalize_label(prediction)`` equals ``normalize_label(r)`` for some reference
    ``r`` (synonyms / alternative names count), else ``0.0``."""
    if not references:
        raise ValueError("classification_accuracy needs at least one reference label")
    pred = normalize_label(prediction)
    return float(any(pred == normalize_label(r) for r in references))


ACCURACY_SPEC = MetricSpec(
    name="accuracy", fn=classification_accuracy, higher_is_better=True, level="example"
)

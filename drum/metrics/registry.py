"""Metric names -> ``MetricSpec``, and which metrics each task type reports.

Specs live next to their functions (``VQA_ACCURACY_SPEC`` in ``vqa.py``, ...) and are registered
here as lazy ``"module:attribute"`` targets, so listing metrics never imports pycocoevalcap.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from drum.registry import Registry

MetricLevel = Literal["example", "corpus"]


@dataclass(frozen=True)
class MetricSpec:
    """A metric and how to call it.

    Attributes:
        name: the registry name.
        fn: for ``level="example"``: ``fn(prediction: str, references: Sequence[str]) -> float``;
            for ``level="corpus"``: ``fn(predictions: Mapping[id, str], references: Mapping[id,
            Sequence[str]]) -> (corpus_score, per_example_scores)``. Corpus metrics (CIDEr-D's
            document frequencies, BLEU's pooled n-gram counts) are not the mean of their
            per-example scores, which is why the two levels are kept apart.
        higher_is_better: direction, for ranking and plots.
        level: ``"example"`` or ``"corpus"``.
        corpus_is_mean: a corpus metric whose corpus score is the mean of its per-example
            scores given the corpus statistics (CIDEr-D's document frequencies, ROUGE-L), so
            its confidence interval may bootstrap per-example scores with those statistics
            held fixed instead of rescoring every resample.
        statistics: for a corpus metric that is a function of summed per-example counts
            (BLEU: n-gram matches, n-gram totals, lengths), ``statistics(predictions,
            references) -> (n, s)`` array of each example's counts (key order of
            ``predictions``); ``from_statistics(column sums) -> corpus score`` gives the score
            of any corpus from them. A bootstrap then sums resampled rows instead of rescoring
            every resample (``drum.metrics.stats.bootstrap_ci_summed``): the same values, no
            re-tokenising. Both or neither.
    """

    name: str
    fn: Callable[..., Any]
    higher_is_better: bool
    level: MetricLevel
    corpus_is_mean: bool = False
    statistics: Callable[..., Any] | None = None
    from_statistics: Callable[..., float] | None = None

    def __post_init__(self) -> None:
        if self.level not in ("example", "corpus"):
            raise ValueError(f"MetricSpec.level must be 'example' or 'corpus', got {self.level!r}")
        if (self.statistics is None) != (self.from_statistics is None):
            raise ValueError(f"MetricSpec {self.name!r}: give statistics and from_statistics both")
        if self.statistics is not None and self.level != "corpus":
            raise ValueError(f"MetricSpec {self.name!r}: statistics are for corpus metrics")

    def score_corpus(
        self,
        predictions: Mapping[Hashable, str],
        references: Mapping[Hashable, Sequence[str]],
    ) -> tuple[float, list[float]]:
        """``(corpus_score, per_example_scores)`` whatever the level.

        Per-example scores follow the key order of ``predictions``; an example-level metric's
        corpus score is their mean.
        """
        if set(predictions) != set(references):
            raise ValueError("predictions and references must have the same ids")
        if not predictions:
            raise ValueError(f"{self.name}: nothing to score")
        if self.level == "corpus":
            score, per_example = self.fn(predictions, references)
            return float(score), [float(s) for s in per_example]
        per_example = [float(self.fn(predictions[k], references[k])) for k in predictions]
        return sum(per_example) / len(per_example), per_example


METRICS = Registry("metric")
METRICS.register("vqa_accuracy", "drum.metrics.vqa:VQA_ACCURACY_SPEC")
METRICS.register("vqa_accuracy_always", "drum.metrics.vqa:VQA_ACCURACY_ALWAYS_SPEC")
METRICS.register("cider", "drum.metrics.caption:CIDER_SPEC")
METRICS.register("bleu4", "drum.metrics.caption:BLEU4_SPEC")
METRICS.register("rouge_l", "drum.metrics.caption:ROUGE_L_SPEC")
METRICS.register("accuracy", "drum.metrics.classification:ACCURACY_SPEC")

# The first metric of each task is its headline number.
TASK_METRICS: dict[str, list[str]] = {
    "vqa": ["vqa_accuracy"],
    "caption": ["cider", "bleu4", "rouge_l"],
    "classification": ["accuracy"],
}


def get_metric(name: str) -> MetricSpec:
    """The ``MetricSpec`` registered as ``name`` (``KeyError`` listing the choices otherwise)."""
    spec = METRICS.get(name)
    if not isinstance(spec, MetricSpec):
        raise TypeError(f"metric {name!r} is registered to a {type(spec).__name__}, not MetricSpec")
    return spec

"""Percentile-bootstrap confidence intervals for evaluation scores.

``bootstrap_ci`` is for metrics that are a mean of per-example scores (VQA accuracy, label
accuracy); ``bootstrap_ci_corpus`` recomputes a corpus-level metric (CIDEr-D, corpus BLEU) on each
resample. Both draw the same resampled index sets for the same ``seed`` and data size, so they
agree exactly on a mean metric. ``bootstrap_ci_summed`` is ``bootstrap_ci_corpus`` for a corpus
metric computed from summed per-example statistics (BLEU): it sums the resampled rows instead
of rescoring every resample.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

# Index blocks are drawn at most this many entries at a time: bounded memory (~64 MB of int64)
# for large evaluation sets, still vectorised.
_MAX_BLOCK_ENTRIES = 8_000_000


def _check_args(n: int, n_resamples: int, confidence: float) -> None:
    if n < 1:
        raise ValueError("cannot bootstrap an empty set of examples")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def _resample_blocks(n: int, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """``(rows, n)`` blocks of indices drawn uniformly with replacement, ``n_resamples`` rows in
    all; the block layout depends only on ``n`` and ``n_resamples`` so that both bootstraps see
    identical draws."""
    rng = np.random.default_rng(seed)
    rows_per_block = max(1, _MAX_BLOCK_ENTRIES // n)
    for start in range(0, n_resamples, rows_per_block):
        rows = min(rows_per_block, n_resamples - start)
        yield rng.integers(0, n, size=(rows, n))


def _percentile_interval(stats: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = 1.0 - confidence
    low, high = np.quantile(stats, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def bootstrap_ci(
    per_example_scores: np.ndarray | Sequence[float],
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``(mean, low, high)``: the sample mean and its percentile-bootstrap interval.

    Draws ``n_resamples`` samples of size ``n`` with replacement, takes each sample's mean
    ``m_b``, and returns the ``(1 - confidence)/2`` and ``(1 + confidence)/2`` quantiles of
    ``{m_b}``. ``mean`` is the mean of the data itself, not of the resamples. Deterministic for a
    given ``seed``.
    """
    scores = np.asarray(per_example_scores, dtype=np.float64)
    if scores.ndim != 1:
        raise ValueError(f"per_example_scores must be 1-D, got shape {scores.shape}")
    _check_args(scores.size, n_resamples, confidence)
    if not np.all(np.isfinite(scores)):
        raise ValueError("per_example_scores contains NaN or infinite values")
    means = np.concatenate(
        [scores[idx].mean(axis=1) for idx in _resample_blocks(scores.size, n_resamples, seed)]
    )
    return (float(scores.mean()), *_percentile_interval(means, confidence))


def _as_float(value: Any) -> float:
    # Corpus metrics return (corpus_score, per_example_scores); plain floats are accepted too.
    return float(value[0] if isinstance(value, tuple) else value)


def bootstrap_ci_corpus(
    metric_fn: Callable[[dict[int, Any], dict[int, Any]], Any],
    predictions: Mapping[Hashable, Any],
    references: Mapping[Hashable, Any],
    n_resamples: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``(score, low, high)`` for a corpus-level metric, by resampling examples.

    ``metric_fn(predictions, references)`` returns a float or ``(float, per_example)`` (as
    ``cider_d`` and ``bleu4`` do). Each resample draws ``n`` example ids with replacement and
    rescores the resampled corpus, re-keyed ``0..n-1`` so that an example drawn twice counts as
    two images (for CIDEr-D it then also counts twice in the document frequencies, as any
    corpus of that make-up would). ``score`` is the metric on the original data.

    The default ``n_resamples`` is 200 rather than 1000 because every resample recomputes the
    metric from scratch (CIDEr-D rebuilds its IDF table: about as slow as one full evaluation);
    percentile intervals from 200 resamples are adequate for reporting, and callers wanting
    tighter tail estimates can pass more.
    """
    keys = list(predictions)
    if set(keys) != set(references):
        raise ValueError("predictions and references must have the same ids")
    _check_args(len(keys), n_resamples, confidence)
    score = _as_float(metric_fn(dict(predictions), dict(references)))
    stats: list[float] = []
    for block in _resample_blocks(len(keys), n_resamples, seed):
        for row in block:
            sample = [keys[i] for i in row]
            stats.append(
                _as_float(
                    metric_fn(
                        {j: predictions[k] for j, k in enumerate(sample)},
                        {j: references[k] for j, k in enumerate(sample)},
                    )
                )
            )
    return (score, *_percentile_interval(np.asarray(stats), confidence))


def bootstrap_ci_summed(
    statistics: np.ndarray,
    from_sums: Callable[[np.ndarray], float],
    n_resamples: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``bootstrap_ci_corpus`` for a corpus metric that is a function of summed per-example
    statistics (``MetricSpec.statistics``: BLEU's n-gram counts and lengths).

    ``statistics``: ``(n, s)``, one row per example; ``from_sums(column sums) -> score``. Each
    resample sums its drawn rows (the same index sets ``bootstrap_ci_corpus`` draws for this
    ``seed`` and ``n``, a row drawn twice counted twice) and scores the sums, so for a metric
    whose corpus score is ``from_sums`` of the summed statistics the result is
    ``bootstrap_ci_corpus``'s, without rescoring every resample from its texts.
    """
    statistics = np.asarray(statistics)
    if statistics.ndim != 2:
        raise ValueError(f"statistics must be 2-D (examples, statistics), got {statistics.shape}")
    _check_args(statistics.shape[0], n_resamples, confidence)
    score = float(from_sums(statistics.sum(axis=0)))
    stats = [
        float(from_sums(sums))
        for block in _resample_blocks(statistics.shape[0], n_resamples, seed)
        for sums in statistics[block].sum(axis=1)  # (rows, s): one row of sums per resample
    ]
    return (score, *_percentile_interval(np.asarray(stats), confidence))


def bootstrap_ci_of_means(
    groups: Sequence[np.ndarray | Sequence[float]],
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``(mean, low, high)`` for the unweighted mean of group means, ``(1/G) sum_g mean(x_g)``
    (a benchmark category: the mean of its tasks' scores).

    Each resample redraws every group's examples with replacement, independently (the groups
    are separate test sets), and takes the mean of the resampled group means; the interval is
    the percentile interval of those values.
    """
    arrays = [np.asarray(group, dtype=np.float64) for group in groups]
    if not arrays:
        raise ValueError("need at least one group")
    for array in arrays:
        if array.ndim != 1:
            raise ValueError(f"every group must be 1-D, got shape {array.shape}")
        _check_args(array.size, n_resamples, confidence)
    rng = np.random.default_rng(seed)
    stats = np.zeros(n_resamples)
    for array in arrays:
        stats += array[rng.integers(0, array.size, size=(n_resamples, array.size))].mean(axis=1)
    stats /= len(arrays)
    mean = float(np.mean([array.mean() for array in arrays]))
    return (mean, *_percentile_interval(stats, confidence))

"""Percentile-bootstrap confidence intervals."""

from __future__ import annotations

import numpy as np
import pytest

import drum.metrics.stats as stats
from drum.metrics.caption import bleu4, bleu4_from_statistics, bleu4_statistics, cider_d
from drum.metrics.stats import (
    bootstrap_ci,
    bootstrap_ci_corpus,
    bootstrap_ci_of_means,
    bootstrap_ci_summed,
)


def _bernoulli(n: int, p: float = 0.6, seed: int = 1) -> np.ndarray:
    return (np.random.default_rng(seed).random(n) < p).astype(float)


def test_interval_contains_the_mean() -> None:
    scores = _bernoulli(200)
    mean, low, high = bootstrap_ci(scores)
    assert mean == pytest.approx(scores.mean())
    assert low < mean < high


def test_width_matches_the_normal_approximation() -> None:
    # p = 0.5, n = 400: standard error 0.025, so a 95% interval is about 2 * 1.96 * 0.025 = 0.098.
    scores = np.array([0.0, 1.0] * 200)
    _, low, high = bootstrap_ci(scores, n_resamples=2000)
    assert 0.085 < high - low < 0.11


def test_interval_narrows_with_more_data() -> None:
    _, low_small, high_small = bootstrap_ci(_bernoulli(50))
    _, low_large, high_large = bootstrap_ci(_bernoulli(5000))
    assert high_large - low_large < 0.25 * (high_small - low_small)


def test_higher_confidence_is_wider() -> None:
    scores = _bernoulli(300)
    _, low90, high90 = bootstrap_ci(scores, confidence=0.90)
    _, low99, high99 = bootstrap_ci(scores, confidence=0.99)
    assert low99 <= low90 and high90 <= high99


def test_deterministic_for_a_seed() -> None:
    scores = _bernoulli(100)
    assert bootstrap_ci(scores, seed=3) == bootstrap_ci(scores, seed=3)
    assert bootstrap_ci(scores, seed=3) != bootstrap_ci(scores, seed=4)


def test_constant_scores_give_a_zero_width_interval() -> None:
    assert bootstrap_ci(np.full(20, 0.7)) == pytest.approx((0.7, 0.7, 0.7))


def test_blocked_draws_cover_every_resample(monkeypatch: pytest.MonkeyPatch) -> None:
    # Force many small index blocks; the result must still be a proper interval.
    monkeypatch.setattr(stats, "_MAX_BLOCK_ENTRIES", 64)
    blocks = list(stats._resample_blocks(30, 100, seed=0))
    assert sum(b.shape[0] for b in blocks) == 100 and len(blocks) > 1
    mean, low, high = bootstrap_ci(_bernoulli(30), n_resamples=100)
    assert low <= mean <= high


def test_corpus_bootstrap_agrees_with_the_mean_bootstrap() -> None:
    scores = _bernoulli(40)
    preds = {f"q{i}": float(s) for i, s in enumerate(scores)}
    refs = {k: None for k in preds}

    def mean_metric(p: dict[int, float], r: dict[int, None]) -> float:
        return float(np.mean(list(p.values())))

    assert bootstrap_ci_corpus(mean_metric, preds, refs, n_resamples=300, seed=5) == pytest.approx(
        bootstrap_ci(scores, n_resamples=300, seed=5)
    )


def test_corpus_bootstrap_on_cider() -> None:
    preds = {
        0: "a man riding a horse on a beach",
        1: "two dogs playing with a ball",
        2: "a plate of food with broccoli",
        3: "a cat sitting on a laptop",
        4: "a red bus on a street",
    }
    refs = {
        0: ["a man rides a horse on the beach", "a person on a horse near the sea"],
        1: ["two dogs play with a red ball", "dogs chasing a ball in the grass"],
        2: ["a plate of broccoli and rice", "food on a white plate"],
        3: ["a cat on a laptop keyboard", "a cat lying on a computer"],
        4: ["a red double decker bus", "a bus driving down the street"],
    }
    result = bootstrap_ci_corpus(cider_d, preds, refs, n_resamples=20, seed=0)
    score, low, high = result
    assert score == pytest.approx(cider_d(preds, refs)[0])
    assert low <= high
    assert bootstrap_ci_corpus(cider_d, preds, refs, n_resamples=20, seed=0) == result


def test_summed_bootstrap_of_bleu4_is_the_corpus_bootstrap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    words = "a man dog cat riding sitting on the horse beach red ball grass plate of food".split()
    rng = np.random.default_rng(3)
    preds = {i: " ".join(rng.choice(words, size=rng.integers(1, 9))) for i in range(40)}
    refs = {
        i: [" ".join(rng.choice(words, size=rng.integers(3, 9))) for _ in range(3)]
        for i in range(40)
    }
    expected = bootstrap_ci_corpus(bleu4, preds, refs, n_resamples=60, seed=2)
    summed = bootstrap_ci_summed(
        bleu4_statistics(preds, refs), bleu4_from_statistics, n_resamples=60, seed=2
    )
    assert summed == expected  # the same floats, not only close
    # Also when the resamples come in several blocks.
    monkeypatch.setattr(stats, "_MAX_BLOCK_ENTRIES", 40 * 7)
    assert bootstrap_ci_summed(
        bleu4_statistics(preds, refs), bleu4_from_statistics, n_resamples=60, seed=2
    ) == bootstrap_ci_corpus(bleu4, preds, refs, n_resamples=60, seed=2)
    with pytest.raises(ValueError, match="2-D"):
        bootstrap_ci_summed(np.ones(3), sum)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        bootstrap_ci(np.array([]))
    with pytest.raises(ValueError):
        bootstrap_ci(np.ones((2, 2)))
    with pytest.raises(ValueError):
        bootstrap_ci(np.array([1.0, np.nan]))
    with pytest.raises(ValueError):
        bootstrap_ci(np.ones(3), confidence=1.0)
    with pytest.raises(ValueError):
        bootstrap_ci(np.ones(3), n_resamples=0)
    with pytest.raises(ValueError):
        bootstrap_ci_corpus(lambda p, r: 0.0, {0: "a"}, {1: ["a"]})


def test_mean_of_group_means_weights_groups_equally() -> None:
    small, large = [1.0, 1.0], [0.0] * 98
    mean, low, high = bootstrap_ci_of_means([small, large], n_resamples=300)
    assert mean == pytest.approx(0.5)  # not 2 / 100
    assert low == pytest.approx(0.5) and high == pytest.approx(0.5)  # constant groups
    rng = np.random.default_rng(1)
    a, b = rng.random(200), rng.random(50)
    mean, low, high = bootstrap_ci_of_means([a, b], n_resamples=500)
    assert mean == pytest.approx((a.mean() + b.mean()) / 2)
    assert low < mean < high
    # The noisier (smaller) group widens the interval more than a larger one would.
    wider = bootstrap_ci_of_means([a, b[:10]], n_resamples=500)
    assert wider[2] - wider[1] > high - low


def test_one_group_is_the_ordinary_bootstrap_interval_width() -> None:
    scores = np.random.default_rng(2).random(400)
    _, low, high = bootstrap_ci_of_means([scores], n_resamples=2000)
    _, ref_low, ref_high = bootstrap_ci(scores, n_resamples=2000)
    assert high - low == pytest.approx(ref_high - ref_low, rel=0.15)


def test_mean_of_group_means_rejects_empty_input() -> None:
    with pytest.raises(ValueError, match="at least one group"):
        bootstrap_ci_of_means([])
    with pytest.raises(ValueError, match="empty"):
        bootstrap_ci_of_means([[1.0], []])

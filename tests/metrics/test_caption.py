"""Caption metrics: the PTB stand-in tokenizer and the pycocoevalcap wrappers.

Holds an independent, by-hand CIDEr-D written from the formula, to check that the library's
``Cider`` really is CIDEr-D and that ``cider_d`` feeds it correctly.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge

from drum.metrics.caption import (
    bleu4,
    bleu4_from_statistics,
    bleu4_statistics,
    cider_d,
    rouge_l,
    tokenize_caption,
)
from drum.metrics.registry import MetricSpec

PREDICTIONS = {
    "img1": "A man riding a horse on the beach.",
    "img2": "Two dogs playing with a red ball in the grass!",
    "img3": "a plate of food with broccoli",
    "img4": "A cat sitting on a laptop keyboard",
    "img5": "a bus",
    "img6": "people standing around a kitchen table, eating pizza",
}
REFERENCES = {
    "img1": [
        "A man rides a horse along the beach.",
        "A person riding a brown horse on a sandy beach.",
        "Man on horseback near the ocean",
    ],
    "img2": [
        "Two dogs play with a ball on the grass.",
        "A pair of dogs chasing a red ball.",
        "Dogs playing in a grassy field with a ball",
        "Two puppies fight over a red toy ball.",
    ],
    "img3": [
        "A plate of food with broccoli and rice.",
        "A white plate topped with broccoli, meat and rice.",
        "Food on a plate including broccoli",
        "a dinner plate with vegetables on it",
        "A close up of a plate of food.",
    ],
    "img4": [
        "A cat is sitting on a laptop keyboard.",
        "A cat lies on the keyboard of a laptop computer.",
        "An orange cat on top of a laptop",
    ],
    "img5": [
        "A red double decker bus driving down a street.",
        "A bus is parked at the side of the road.",
        "A city bus on the street.",
        "A large bus driving on a road",
    ],
    "img6": [
        "People eating pizza around a table in a kitchen.",
        "A group of friends sharing pizza at a kitchen table.",
        "Several people standing in a kitchen with pizza.",
    ],
}


def _ngrams(tokens: list[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def reference_cider_d(
    candidates: dict[str, str], references: dict[str, list[str]], n_max: int = 4, sigma: float = 6.0
) -> tuple[float, list[float]]:
    """CIDEr-D by hand, from Vedantam et al. (2015), on pre-tokenised text.

    g^n_k(x) = tf_k(x) * log(N / max(1, df_k)), df_k = #images whose references contain n-gram k;
    CIDEr-D_n(c, S) = 10/|S| sum_s exp(-(l(c)-l(s))^2 / (2 sigma^2))
                      * sum_k min(g_k(c), g_k(s)) g_k(s) / (|g(c)| |g(s)|);
    CIDEr-D = mean_n CIDEr-D_n. Like the COCO code, l(x) counts bigrams (= tokens - 1).
    """
    n_images = len(references)
    df: Counter[tuple[str, ...]] = Counter()
    for refs in references.values():
        df.update({g for r in refs for n in range(1, n_max + 1) for g in _ngrams(r.split(), n)})

    def weights(tokens: list[str], n: int) -> dict[tuple[str, ...], float]:
        return {
            g: tf * (math.log(n_images) - math.log(max(1.0, df[g])))
            for g, tf in _ngrams(tokens, n).items()
        }

    scores = []
    for key, candidate in candidates.items():
        cand = candidate.split()
        total = 0.0
        for ref_text in references[key]:
            ref = ref_text.split()
            delta = max(len(cand) - 1, 0) - max(len(ref) - 1, 0)
            penalty = math.exp(-(delta**2) / (2 * sigma**2))
            for n in range(1, n_max + 1):
                gc, gr = weights(cand, n), weights(ref, n)
                norm_c = math.sqrt(sum(v * v for v in gc.values()))
                norm_r = math.sqrt(sum(v * v for v in gr.values()))
                if norm_c == 0 or norm_r == 0:
                    continue
                dot = sum(min(v, gr.get(g, 0.0)) * gr.get(g, 0.0) for g, v in gc.items())
                total += penalty * dot / (norm_c * norm_r) / n_max
        scores.append(10.0 * total / len(references[key]))
    return sum(scores) / len(scores), scores


def _tokenised() -> tuple[dict[str, str], dict[str, list[str]]]:
    cands = {k: tokenize_caption(v) for k, v in PREDICTIONS.items()}
    refs = {k: [tokenize_caption(r) for r in v] for k, v in REFERENCES.items()}
    return cands, refs


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("A man riding a horse.", "a man riding a horse"),
        ("Two dogs, one ball!", "two dogs one ball"),
        ('The dog\'s ball (red) on "grass"...', "the dog 's ball red on grass"),
        ("I can't -- won't go; ok?", "i ca n't wo n't go ok"),
        ("A black-and-white photo at 10:30.", "a black-and-white photo at 10:30"),
        ("1,000 birds on a 3.5 m pole", "1,000 birds on a 3.5 m pole"),
        ("the dogs' toys", "the dogs toys"),
        ("'hello' world", "hello world"),
        ("It\u2019s \u201cfine\u201d", "it 's fine"),
        ("a cat\non a mat", "a cat on a mat"),
        ("cannot", "can not"),
        ("", ""),
    ],
)
def test_tokenize_caption(raw: str, expected: str) -> None:
    assert tokenize_caption(raw) == expected


def test_tokenize_caption_drops_every_ptb_punctuation_token() -> None:
    text = "a , b . c ? d ! e : f ; g - h -- i ... j ' k ` l '' m ``"
    assert tokenize_caption(text) == "a b c d e f g h i j k l m"


def test_library_cider_is_cider_d() -> None:
    scorer = Cider()
    assert scorer._sigma == 6.0  # the Gaussian length penalty of CIDEr-D
    # Clipping: plain CIDEr's cosine is scale-invariant, so "dog dog" would score at least as
    # well as "dog" (same direction, and its length matches "a dog" better). With CIDEr-D's
    # min(g(c), g(s)) the doubled weight is clipped and the score roughly halves.
    gts = {0: ["a dog"], 1: ["a cat"], 2: ["the bird"]}
    single, _ = scorer.compute_score(gts, {0: ["dog"], 1: ["cat"], 2: ["bird"]})
    repeated, _ = scorer.compute_score(gts, {0: ["dog dog"], 1: ["cat cat"], 2: ["bird bird"]})
    assert repeated < 0.6 * single


def test_cider_d_matches_the_hand_implementation() -> None:
    score, per_image = cider_d(PREDICTIONS, REFERENCES)
    expected, expected_per_image = reference_cider_d(*_tokenised())
    assert score == pytest.approx(expected, abs=1e-6)
    assert per_image == pytest.approx(expected_per_image, abs=1e-6)
    assert 0.0 < score < 10.0


def test_cider_d_equals_the_library_on_pretokenised_input() -> None:
    cands, refs = _tokenised()
    lib_score, lib_scores = Cider().compute_score(refs, {k: [v] for k, v in cands.items()})
    score, per_image = cider_d(PREDICTIONS, REFERENCES)
    assert score == pytest.approx(float(lib_score), abs=1e-12)
    assert per_image == pytest.approx([float(s) for s in lib_scores], abs=1e-12)


def test_per_image_scores_follow_prediction_order() -> None:
    reordered = dict(reversed(list(PREDICTIONS.items())))
    _, forward = cider_d(PREDICTIONS, REFERENCES)
    _, backward = cider_d(reordered, REFERENCES)
    assert backward == pytest.approx(forward[::-1])


def test_bleu4_and_rouge_l_equal_the_library() -> None:
    cands, refs = _tokenised()
    res = {k: [v] for k, v in cands.items()}
    bleu_lib, bleu_lib_per = Bleu(4).compute_score(refs, res, verbose=0)
    rouge_lib, rouge_lib_per = Rouge().compute_score(refs, res)
    bleu, bleu_per = bleu4(PREDICTIONS, REFERENCES)
    rouge, rouge_per = rouge_l(PREDICTIONS, REFERENCES)
    assert bleu == pytest.approx(bleu_lib[3], abs=1e-12)
    assert bleu_per == pytest.approx(bleu_lib_per[3], abs=1e-12)
    assert rouge == pytest.approx(float(rouge_lib), abs=1e-12)
    assert rouge_per == pytest.approx([float(s) for s in rouge_lib_per], abs=1e-12)


def test_rouge_l_by_hand() -> None:
    # LCS("a b c d", "a c d e f") = 3: P = 3/4, R = 3/5, beta = 1.2.
    p, r, b2 = 3 / 4, 3 / 5, 1.2**2
    score, _ = rouge_l({0: "a b c d"}, {0: ["a c d e f"]})
    assert score == pytest.approx((1 + b2) * p * r / (r + b2 * p))


def test_perfect_captions() -> None:
    refs = {0: ["a dog on a red sofa"], 1: ["two cats asleep in the sun"]}
    preds = {0: "A dog on a red sofa.", 1: "Two cats asleep in the sun!"}
    assert bleu4(preds, refs)[0] == pytest.approx(1.0, abs=1e-6)
    assert rouge_l(preds, refs)[0] == pytest.approx(1.0)


def test_mismatched_ids_and_bad_references_raise() -> None:
    with pytest.raises(ValueError):
        cider_d({0: "a dog"}, {1: ["a dog"]})
    with pytest.raises(ValueError):
        cider_d({0: "a dog"}, {0: "a dog"})  # type: ignore[dict-item]
    with pytest.raises(ValueError):
        cider_d({}, {})


def test_bleu4_from_summed_statistics_is_bleu4_exactly() -> None:
    statistics = bleu4_statistics(PREDICTIONS, REFERENCES)
    assert statistics.shape == (len(PREDICTIONS), 10)
    # "a bus" against its references: 2 tokens, 1 bigram, no trigram.
    row = statistics[list(PREDICTIONS).index("img5")]
    assert list(row[[0, 2, 3, 4, 5]]) == [2, 2, 1, 0, 0]
    assert bleu4_from_statistics(statistics.sum(axis=0)) == bleu4(PREDICTIONS, REFERENCES)[0]
    # Any corpus made of these examples, one drawn twice counted twice (as a bootstrap draws).
    keys = list(PREDICTIONS)
    rng = np.random.default_rng(0)
    for _ in range(20):
        rows = rng.integers(0, len(keys), size=len(keys))
        preds = {j: PREDICTIONS[keys[i]] for j, i in enumerate(rows)}
        refs = {j: REFERENCES[keys[i]] for j, i in enumerate(rows)}
        assert bleu4_from_statistics(statistics[rows].sum(axis=0)) == bleu4(preds, refs)[0]
    # Candidates shorter than their references: the brevity penalty, the same float.
    short = {k: " ".join(v.split()[:2]) for k, v in PREDICTIONS.items()}
    sums = bleu4_statistics(short, REFERENCES).sum(axis=0)
    assert sums[0] < sums[1]
    assert bleu4_from_statistics(sums) == bleu4(short, REFERENCES)[0]


def test_metric_spec_takes_statistics_and_their_score_together() -> None:
    with pytest.raises(ValueError, match="both"):
        MetricSpec("m", bleu4, True, "corpus", statistics=bleu4_statistics)
    with pytest.raises(ValueError, match="corpus metrics"):
        MetricSpec("m", len, True, "example", False, bleu4_statistics, bleu4_from_statistics)

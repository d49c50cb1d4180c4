"""Captioning metrics: CIDEr-D, BLEU-4 and ROUGE-L through pycocoevalcap, with a pure-Python
stand-in for its Java PTB tokenizer.

pycocoevalcap's ``Cider`` scorer *is* CIDEr-D (Vedantam et al., 2015, the variant used by the COCO
leaderboard), despite its name; reading ``cider/cider_scorer.py`` (pycocoevalcap 1.2) shows all
three CIDEr-D changes: a Gaussian length penalty with ``sigma=6``, clipping of the candidate's
n-gram weights by the reference's, and the final ``* 10``. It has no separate CIDEr-D class.

Scores are on the pycocoevalcap scale (CIDEr-D around 1.0 for good COCO captions, BLEU and
ROUGE-L in [0, 1]); multiply by 100 for the numbers papers usually print.
"""

from __future__ import annotations

import math
import re
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge

from drum.metrics.registry import MetricSpec

# pycocoevalcap/tokenizer/ptbtokenizer.py PUNCTUATIONS: tokens dropped after PTB tokenisation.
PTB_PUNCTUATIONS: frozenset[str] = frozenset(
    {"''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--",
     "...", ";"}
)  # fmt: skip

# PTB splits these clitics off as their own tokens ("dog's" -> "dog 's"); they stay in the output.
_CLITICS = ("'s", "'re", "'ve", "'ll", "'d", "'m")
_NT = re.compile(r"^(.+)(n't)$")
_CLITIC = re.compile(r"^(.+)('s|'re|'ve|'ll|'d|'m)$")
_SPLIT_WORDS = {"cannot": "can not", "gonna": "gon na", "gotta": "got ta", "wanna": "wan na"}

_CURLY = str.maketrans({"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'"})
# Brackets become -LRB-/-RRB-/-LCB-/-RCB- in PTB (then dropped); double quotes and backticks become
# `` / '' (dropped); runs of 3+ periods are "..." and 2+ hyphens "--" (dropped).
_ALWAYS_DROPPED = re.compile(r"[()\[\]{}\"`?!;]|\.{3,}|-{2,}")
_COMMA_COLON = re.compile(r"(?<!\d)[,:]|[,:](?!\d)")  # "1,000" and "10:30" keep theirs
_FINAL_PERIOD = re.compile(r"\.+(?=\s|$)")  # "3.5" keeps its period, "dog." loses it
_SPLIT_SYMBOLS = re.compile(r"([$%#])")  # PTB makes these separate (kept) tokens


def _split_token(token: str) -> list[str]:
    """PTB-style handling of quotes, hyphens and clitics on one whitespace-free token."""
    if not (token in _CLITICS or re.match(r"^'\d", token)):
        token = token.lstrip("'")  # an opening single quote, PTB's "`"
    token = token.rstrip("'").strip("-")  # closing quote ("dogs'" -> "dogs ''"), stray hyphens
    if not token:
        return []
    if token in _SPLIT_WORDS:
        return _SPLIT_WORDS[token].split()
    match = _NT.match(token) or _CLITIC.match(token)
    if match:
        return [*_split_token(match.group(1)), match.group(2)]
    return [token]


def tokenize_caption(text: str) -> str:
    """Lowercased, PTB-tokenised caption with PTB punctuation removed, tokens joined by spaces.

    A dependency-free stand-in for ``PTBTokenizer`` (Stanford CoreNLP 3.4.1, ``-preserveLines
    -lowerCase``, then dropping ``PTB_PUNCTUATIONS``), which needs Java. It reproduces what
    matters for COCO-style captions: ``. , : ; ? ! ... -- - ' " ` ( ) { }`` are removed except
    inside numbers ("3.5", "1,000", "10:30"); hyphenated words stay whole ("black-and-white");
    clitics are split ("dog's" -> "dog 's", "don't" -> "do n't", "cannot" -> "can not");
    ``$ % #`` become their own tokens.

    Known differences from the Java tokenizer: abbreviations keep no final period ("u.s." ->
    "u.s", PTB keeps "u.s."); square brackets are dropped (PTB emits "-LSB-"/"-RSB-", which
    pycocoevalcap does not remove); no other PTB rules (e.g. "/" and "*" escaping) are mimicked.
    """
    text = text.translate(_CURLY).lower().replace("\n", " ")
    text = _ALWAYS_DROPPED.sub(" ", text)
    text = _COMMA_COLON.sub(" ", text)
    text = _FINAL_PERIOD.sub(" ", text)
    text = _SPLIT_SYMBOLS.sub(r" \1 ", text)
    tokens = [piece for token in text.split() for piece in _split_token(token)]
    return " ".join(t for t in tokens if t not in PTB_PUNCTUATIONS)


def _tokenized_inputs(
    predictions: Mapping[Hashable, str], references: Mapping[Hashable, Sequence[str]]
) -> tuple[dict[Hashable, list[str]], dict[Hashable, list[str]]]:
    """pycocoevalcap's ``(gts, res)`` dicts, both in the key order of ``predictions`` (so the
    per-example scores it returns line up with it)."""
    if set(predictions) != set(references):
        missing = set(predictions) ^ set(references)
        raise ValueError(f"predictions and references differ on ids, e.g. {next(iter(missing))!r}")
    if not predictions:
        raise ValueError("no captions to score")
    gts: dict[Hashable, list[str]] = {}
    res: dict[Hashable, list[str]] = {}
    for key, prediction in predictions.items():
        refs = references[key]
        if isinstance(refs, str) or not refs:
            raise ValueError(f"references[{key!r}] must be a non-empty list of captions")
        gts[key] = [tokenize_caption(r) for r in refs]
        res[key] = [tokenize_caption(prediction)]
    return gts, res


def cider_d(
    predictions: Mapping[Hashable, str], references: Mapping[Hashable, Sequence[str]]
) -> tuple[float, list[float]]:
    """Corpus CIDEr-D and per-image scores, via ``pycocoevalcap.cider.Cider`` (n=4, sigma=6).

    For candidate ``c`` and references ``S`` of image ``i``, with ``g^n`` the TF-IDF vectors of
    n-grams (``tf * (log N - log max(1, df))``, ``df`` counted over the reference sets of the
    ``N`` images being scored)::

        CIDEr-D_n(c, S) = 10/|S| * sum_{s in S} exp(-(l(c) - l(s))^2 / (2 * 6^2))
                          * sum_k min(g^n_k(c), g^n_k(s)) * g^n_k(s) / (||g^n(c)|| ||g^n(s)||)
        CIDEr-D(c, S) = mean_{n=1..4} CIDEr-D_n(c, S),   corpus score = mean over images

    where ``l`` is, as coded in pycocoevalcap, the number of bigrams (token count - 1). The IDF
    depends on the whole set of images scored, so the corpus score is not a function of single
    examples: bootstrap it with ``bootstrap_ci_corpus``.
    """
    gts, res = _tokenized_inputs(predictions, references)
    score, scores = Cider().compute_score(gts, res)
    return float(score), [float(s) for s in scores]


def bleu4(
    predictions: Mapping[Hashable, str], references: Mapping[Hashable, Sequence[str]]
) -> tuple[float, list[float]]:
    """Corpus BLEU-4 and per-image BLEU-4, via ``pycocoevalcap.bleu.Bleu(4)``.

    ``BLEU-4 = BP * exp(sum_{n=1..4} 1/4 * log p_n)`` with ``p_n`` the clipped n-gram precision
    pooled over the corpus and ``BP = min(1, exp(1 - r/c))`` (``r``: summed closest reference
    lengths, ``c``: summed candidate lengths). The per-image scores apply the same formula to
    each image alone; their mean is not the corpus score.
    """
    gts, res = _tokenized_inputs(predictions, references)
    score, scores = Bleu(4).compute_score(gts, res, verbose=0)
    return float(score[3]), [float(s) for s in scores[3]]


# pycocoevalcap's BleuScorer guards: added to each n-gram precision's numerator (``TINY``) and
# denominator (``SMALL``), and to the length ratio's, so that zero counts give 0, not an error.
_BLEU_TINY = 1e-15
_BLEU_SMALL = 1e-9
_BLEU_N = 4


def bleu4_statistics(
    predictions: Mapping[Hashable, str], references: Mapping[Hashable, Sequence[str]]
) -> np.ndarray:
    """Each example's BLEU counts, ``(n, 10)`` int64 in the key order of ``predictions``:
    candidate length, closest reference length (ties to the shorter, as pycocoevalcap's
    ``"closest"``), then n-gram totals ``guess_1..4`` and clipped matches ``correct_1..4``,
    as pycocoevalcap's ``BleuScorer`` cooks them (its own n-gram counting).
    ``bleu4_from_statistics`` of their column sums is ``bleu4``'s corpus score, exactly."""
    from pycocoevalcap.bleu.bleu_scorer import BleuScorer

    gts, res = _tokenized_inputs(predictions, references)
    scorer = BleuScorer(n=_BLEU_N)
    for key in res:
        scorer += (res[key][0], gts[key])
    rows = []
    for comps in scorer.ctest:
        length = comps["testlen"]
        closest = min((abs(r - length), r) for r in comps["reflen"])[1]
        rows.append([length, closest, *comps["guess"], *comps["correct"]])
    return np.asarray(rows, dtype=np.int64)


def bleu4_from_statistics(sums: Sequence[int] | np.ndarray) -> float:
    """Corpus BLEU-4 from summed ``bleu4_statistics`` columns, with pycocoevalcap's arithmetic
    in its order (so the float is the one ``bleu4`` returns): the product of the four guarded
    precisions to the power 1/4, times ``exp(1 - r/c)`` when the candidates are shorter."""
    length, reference = int(sums[0]), int(sums[1])
    guess = [int(g) for g in sums[2 : 2 + _BLEU_N]]
    correct = [int(c) for c in sums[2 + _BLEU_N : 2 + 2 * _BLEU_N]]
    product = 1.0
    for k in range(_BLEU_N):
        product *= float(correct[k] + _BLEU_TINY) / (guess[k] + _BLEU_SMALL)
    score = product ** (1.0 / _BLEU_N)
    ratio = (length + _BLEU_TINY) / (reference + _BLEU_SMALL)
    if ratio < 1:
        score *= math.exp(1 - 1 / ratio)
    return score


def rouge_l(
    predictions: Mapping[Hashable, str], references: Mapping[Hashable, Sequence[str]]
) -> tuple[float, list[float]]:
    """Mean ROUGE-L and per-image scores, via ``pycocoevalcap.rouge.Rouge``.

    Per image: ``P = max_s LCS(c, s)/|c|``, ``R = max_s LCS(c, s)/|s|`` and
    ``ROUGE-L = (1 + b^2) P R / (R + b^2 P)`` with ``b = 1.2`` (0 when P or R is 0).
    """
    gts, res = _tokenized_inputs(predictions, references)
    score, scores = Rouge().compute_score(gts, res)
    return float(score), [float(s) for s in scores]


CIDER_SPEC = MetricSpec(
    name="cider", fn=cider_d, higher_is_better=True, level="corpus", corpus_is_mean=True
)
BLEU4_SPEC = MetricSpec(
    name="bleu4",
    fn=bleu4,
    higher_is_better=True,
    level="corpus",
    statistics=bleu4_statistics,
    from_statistics=bleu4_from_statistics,
)
ROUGE_L_SPEC = MetricSpec(
    name="rouge_l", fn=rouge_l, higher_is_better=True, level="corpus", corpus_is_mean=True
)

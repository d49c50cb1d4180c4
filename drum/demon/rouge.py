"""ROUGE-L F as the ``rouge`` package 1.0.1 computes it (``Rouge().get_scores(hyp, ref)``).

DEMON's open-ended tasks are scored with ``rouge==1.0.1`` (pinned in ``DCDmllm/Cheetah``,
``Cheetah/requirement.txt``). Its only release computes summary-level ROUGE-L with sets, not
multisets, and reconstructs each LCS recursively, which overflows Python's recursion limit near
1,000 words (pltrdy/rouge#67; fixed on its master in 2024, never released). This module computes
the same value, iteratively; ``tests/demon/fixtures`` holds the package's own outputs.
"""

from __future__ import annotations

from collections.abc import Sequence


def split_sentences(text: str) -> list[str]:
    """The package's sentence split: pieces between periods, empty pieces dropped, inner
    whitespace collapsed. A whitespace-only piece survives as the sentence ``""`` (whose one
    word is ``""``); a text made only of periods has no sentence at all.

    >>> split_sentences("a  b. c..")
    ['a b', 'c']
    >>> split_sentences("a. . b")
    ['a', '', 'b']
    """
    return [" ".join(piece.split()) for piece in text.split(".") if len(piece) > 0]


def lcs_words(x: Sequence[str], y: Sequence[str]) -> set[str]:
    """The set of words of the LCS of ``x`` and ``y`` that the package reconstructs.

    The standard DP table, then a walk back from the end: on a match take it, otherwise move
    up (drop ``x[i]``) only if that keeps a strictly longer LCS, else move left (drop ``y[j]``).
    Ties therefore keep the LCS that ends latest in ``x`` (the package passes the reference
    sentence as ``x``): ``lcs_words("a b", "b a") == {"b"}``, ``lcs_words("b a", "a b") ==
    {"a"}`` (as word lists). Iterative, so any length works.
    """
    n, m = len(x), len(y)
    table = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        row, prev, xi = table[i], table[i - 1], x[i - 1]
        for j in range(1, m + 1):
            if xi == y[j - 1]:
                row[j] = prev[j - 1] + 1
            else:
                row[j] = max(prev[j], row[j - 1])
    words: set[str] = set()
    i, j = n, m
    while i > 0 and j > 0:
        if x[i - 1] == y[j - 1]:
            words.add(x[i - 1])
            i, j = i - 1, j - 1
        elif table[i - 1][j] > table[i][j - 1]:
            i -= 1
        else:
            j -= 1
    return words


def rouge_l_summary_level(
    hypothesis_sentences: Sequence[str], reference_sentences: Sequence[str]
) -> dict[str, float]:
    """``rouge_score.rouge_l_summary_level`` with the package default ``exclusive=True``.

    With words split on single spaces::

        U = union over reference sentences r and hypothesis sentences c of lcs_words(r, c)
        R = |U| / m,   m = number of distinct words in the reference
        P = |U| / n,   n = number of distinct words in the hypothesis
        F = 2 * (P * R / (P + R + 1e-8))

    The union is one set across all reference sentences (the package threads it through), and
    every count is of distinct words: "the the cat" against "the cat" has m = n = 2, |U| = 2.

    Raises:
        ValueError: if either side has no sentence (as the package does).
    """
    if len(hypothesis_sentences) == 0 or len(reference_sentences) == 0:
        raise ValueError("Collections must contain at least 1 sentence.")
    hyp_words = [s.split(" ") for s in hypothesis_sentences]
    ref_words = [s.split(" ") for s in reference_sentences]
    m = len({w for words in ref_words for w in words})
    n = len({w for words in hyp_words for w in words})
    union: set[str] = set()
    for ref in ref_words:
        for hyp in hyp_words:
            union |= lcs_words(ref, hyp)
    r_lcs = len(union) / m
    p_lcs = len(union) / n
    # The package's expression, operation for operation, so values agree to the last bit.
    f_lcs = 2.0 * ((p_lcs * r_lcs) / (p_lcs + r_lcs + 1e-8))
    return {"f": f_lcs, "p": p_lcs, "r": r_lcs}


def rouge_l_f(hypothesis: str, reference: str) -> float:
    """``Rouge().get_scores(hypothesis, reference)[0]["rouge-l"]["f"]`` of ``rouge==1.0.1``.

    Both texts are split into sentences on periods (``split_sentences``) and scored by
    ``rouge_l_summary_level``. One fix: a hypothesis with no sentence (empty, or only
    periods) scores 0.0, where the package raises ``ValueError``.

    Raises:
        ValueError: if the reference has no sentence (empty, or only periods).

    >>> rouge_l_f("the cat sat", "the cat sat")
    0.999999995
    """
    ref_sentences = split_sentences(reference)
    if not ref_sentences:
        raise ValueError(f"the reference has no sentence to score against: {reference!r}")
    hyp_sentences = split_sentences(hypothesis)
    if not hyp_sentences:
        return 0.0
    return rouge_l_summary_level(hyp_sentences, ref_sentences)["f"]

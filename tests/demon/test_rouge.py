"""``drum.demon.rouge``: ROUGE-L F of ``rouge==1.0.1``, by hand and against the package."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import pytest

import drum.demon.rouge as rouge_module
from drum.demon.rouge import lcs_words, rouge_l_f, rouge_l_summary_level, split_sentences

REFERENCE = json.loads((Path(__file__).parent / "fixtures" / "reference_outputs.json").read_text())


def f_of(p: float, r: float) -> float:
    """The package's F, operation for operation."""
    return 2.0 * ((p * r) / (p + r + 1e-8))


def test_identical_texts_fall_short_of_one_by_the_epsilon() -> None:
    assert rouge_l_f("the cat sat", "the cat sat") == f_of(1.0, 1.0) == 0.999999995


def test_lcs_ties_keep_the_match_that_ends_latest_in_the_reference_sentence() -> None:
    assert lcs_words(["a", "b"], ["b", "a"]) == {"b"}
    assert lcs_words(["b", "a"], ["a", "b"]) == {"a"}
    # hypothesis "b a", reference "a b": LCS {"b"}, P = R = 1/2.
    assert rouge_l_f("b a", "a b") == f_of(0.5, 0.5)


def test_the_union_is_one_set_across_reference_sentences() -> None:
    # Reference sentences "a b" and "a" against hypothesis "b a": the tie gives {"b"} for the
    # first and {"a"} for the second; the union {"a", "b"} covers both sides (m = n = 2). Had
    # the tie gone to "a", the union would be {"a"} and F = f_of(0.5, 0.5).
    assert rouge_l_f("b a", "a b. a") == f_of(1.0, 1.0)
    # "a c e" and "b d" each find their words in "a b c d e": |U| = 5 = m = n.
    assert rouge_l_f("a b c d e", "a c e. b d") == f_of(1.0, 1.0)


def test_counts_are_of_distinct_words() -> None:
    # m = |{the, dog}| = 2, n = |{the, dog}| = 2, U = {the, dog}.
    assert rouge_l_f("the the the dog", "the dog dog") == f_of(1.0, 1.0)
    # m = 3 (the, cat, sat), n = 2, LCS of "the cat sat" / "the cat" = {the, cat}.
    assert rouge_l_f("the cat", "the cat sat") == f_of(1.0, 2 / 3)


def test_whitespace_between_periods_is_a_sentence_whose_word_is_empty() -> None:
    assert split_sentences("a. . b") == ["a", "", "b"]
    # Hypothesis words {"", "a"} (n = 2), reference {"a"} (m = 1), U = {"a"}.
    assert rouge_l_f(" . a", "a") == f_of(0.5, 1.0)


def test_hypothesis_without_sentence_scores_zero_and_reference_without_raises() -> None:
    # The package raises "Hypothesis is empty." for both; we score 0.
    assert rouge_l_f("", "a dog") == 0.0
    assert rouge_l_f("....", "a dog") == 0.0
    with pytest.raises(ValueError, match="no sentence"):
        rouge_l_f("a dog", "....")
    with pytest.raises(ValueError, match="at least 1 sentence"):
        rouge_l_summary_level([], ["a"])


def test_long_texts_beyond_the_packages_recursion_limit() -> None:
    # The package recurses once per step of the LCS walk (~1200 here, the limit is 1000).
    words = " ".join(["x"] * 1200)
    assert rouge_l_f(words, words) == f_of(1.0, 1.0)
    # 1200 "a"s then "b" against "b" then 1200 "a"s: LCS = the a's, U = {a}, m = n = 2.
    a_run = " ".join(["a"] * 1200)
    assert rouge_l_f("b " + a_run, a_run + " b") == f_of(0.5, 0.5)


def test_matches_the_package() -> None:
    cases = REFERENCE["rouge_package"]
    assert len(cases) >= 30
    for case in cases:
        hyp, ref = case["hypothesis"], case["reference"]
        if "value" in case:
            assert rouge_l_f(hyp, ref) == case["value"], (hyp, ref)
        elif case["message"] == "Hypothesis is empty.":
            assert rouge_l_f(hyp, ref) == 0.0
        else:
            with pytest.raises(ValueError):
                rouge_l_f(hyp, ref)


def test_docstring_examples() -> None:
    assert doctest.testmod(rouge_module).failed == 0

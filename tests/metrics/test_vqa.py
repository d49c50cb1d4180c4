"""VQAv2 accuracy and the official answer normalisation (vqaEval.py)."""

from __future__ import annotations

import random

import pytest

from drum.metrics.registry import get_metric
from drum.metrics.vqa import (
    VQA_NORMALIZATIONS,
    normalize_vqa_answer,
    process_digit_article,
    process_punctuation,
    vqa_accuracy,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Two", "2"),
        ("ten", "10"),
        ("none", "0"),  # official: "none" is the number zero
        ("the dog.", "dog"),
        ("A Dog!", "dog"),
        ("an apple", "apple"),
        ("dont", "don't"),
        ("Hes", "he's"),
        ("Im", "im"),  # the official key is "Im", never reached after lowercasing
        ("1,000", "1000"),  # digit-comma-digit: punctuation is deleted, not spaced
        ("red,blue", "red blue"),  # no space around the comma: it becomes a space
        ("yes, it is", "yes it is"),  # ", " present: the comma is deleted
        ("1,000 dogs;yes", "1000 dogsyes"),  # a digit comma anywhere deletes every mark
        ("(a) cat", "cat"),
        ("t-shirt", "t shirt"),
        ("3.5", "3.5"),  # a period before a digit stays
        ("3.5.", "3.5"),
        ("u.s.a.", "usa"),
        ("  Yes\n", "yes"),
        ("it's", "it's"),  # apostrophes are not punctuation here
        ("10:30", "10:30"),  # nor are colons
    ],
)
def test_normalize_vqa_answer(raw: str, expected: str) -> None:
    assert normalize_vqa_answer(raw) == expected


def test_period_strip_keeps_the_official_count_quirk() -> None:
    # Official: periodStrip.sub("", text, re.UNICODE) passes 32 as `count`.
    assert process_punctuation("a" + "." * 40) == "a" + "." * 8


def test_process_punctuation_keeps_case_and_process_digit_article_lowercases() -> None:
    assert process_punctuation("Two!") == "Two "
    assert process_digit_article("The  Two  Dogs") == "2 dogs"


def _official_loop(prediction: str, answers: list[str]) -> float:
    """The accuracy loop of vqaEval.py, as literally as possible (answer dicts with ids, the
    exact, case-sensitive ``item['answer'] == resAns``)."""
    gts = [{"answer": a.replace("\n", " ").replace("\t", " ").strip(), "answer_id": i}
           for i, a in enumerate(answers)]  # fmt: skip
    res = prediction.replace("\n", " ").replace("\t", " ").strip()
    if len({g["answer"] for g in gts}) > 1:
        for g in gts:
            g["answer"] = process_digit_article(process_punctuation(g["answer"]))
        res = process_digit_article(process_punctuation(res))
    accs = []
    for datum in gts:
        others = [item for item in gts if item != datum]
        matching = [item for item in others if item["answer"] == res]
        accs.append(min(1, float(len(matching)) / 3))
    return float(sum(accs)) / len(accs)


def test_three_of_ten_is_point_nine() -> None:
    # Dropping one of the 3 matches leaves 2 (2/3); dropping one of the 7 others leaves 3 (1).
    refs = ["dog"] * 3 + ["cat"] * 7
    assert vqa_accuracy("dog", refs) == pytest.approx((3 * (2 / 3) + 7 * 1) / 10)
    assert vqa_accuracy("dog", refs) == pytest.approx(0.9)


@pytest.mark.parametrize(
    ("matches", "expected"),
    [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)],
)
def test_ten_answers_by_hand(matches: int, expected: float) -> None:
    # 1 match: 9 subsets keep it (1/3), 1 drops it (0) -> 0.3; 2 matches: 2*(1/3) + 8*(2/3) = 6.
    refs = ["yes"] * matches + ["no"] * (10 - matches)
    assert vqa_accuracy("yes", refs) == pytest.approx(expected)


def test_disagreeing_references_normalise_both_sides() -> None:
    # The humans disagree, so the official script normalises prediction and references.
    refs = ["2", "2", "2", "two", "3", "3", "3", "3", "3", "3"]
    assert vqa_accuracy("Two.", refs) == pytest.approx(1.0)
    assert vqa_accuracy("The dog", ["dog", "dog", "dog", "a dog"]) == pytest.approx(1.0)
    assert vqa_accuracy("WHITE", ["white"] * 9 + ["White"]) == pytest.approx(1.0)
    for normalization in VQA_NORMALIZATIONS:
        assert vqa_accuracy("Two.", refs, normalization=normalization) == pytest.approx(1.0)


def test_fewer_than_ten_references() -> None:
    assert vqa_accuracy("dog", ["dog"]) == 1.0  # single reference: exact match
    assert vqa_accuracy("Dog.", ["dog"]) == 0.0  # ... not normalised officially (unanimous)
    assert vqa_accuracy("Dog.", ["dog"], normalization="always") == 1.0
    assert vqa_accuracy("cat", ["dog"]) == 0.0
    assert vqa_accuracy("dog", ["dog", "dog"]) == pytest.approx(1 / 3)
    assert vqa_accuracy("dog", ["dog", "dog", "dog"]) == pytest.approx(2 / 3)
    assert vqa_accuracy("dog", ["dog"] * 4) == pytest.approx(1.0)
    assert vqa_accuracy("dog", ["dog"] * 3 + ["cat"] * 2) == pytest.approx((3 * 2 / 3 + 2) / 5)


def test_official_unanimous_references_are_compared_untouched() -> None:
    # Official: ten identical answers -> no normalisation, exact and case-sensitive.
    assert vqa_accuracy("WHITE", ["white"] * 10) == 0.0
    assert vqa_accuracy("WHITE", ["white"] * 10, normalization="always") == 1.0
    assert vqa_accuracy("Two", ["2"] * 10) == 0.0
    assert vqa_accuracy("Two", ["2"] * 10, normalization="always") == 1.0
    flag = "red, white, and blue?"
    assert vqa_accuracy(flag, [flag] * 10) == 1.0
    assert vqa_accuracy("red white and blue", [flag] * 10) == 0.0
    assert vqa_accuracy("red white and blue", [flag] * 10, normalization="always") == 1.0
    # Only '\n' and '\t' become spaces, then strip: whitespace is all that is cleaned up.
    assert vqa_accuracy(" yes\t\n", ["yes"] * 10) == 1.0
    assert vqa_accuracy("yes.", ["yes"] * 10) == 0.0
    assert vqa_accuracy(" YES\t", ["yes"] * 10) == 0.0  # case-sensitive


def test_official_is_the_default_everywhere() -> None:
    assert get_metric("vqa_accuracy").fn("WHITE", ["white"] * 10) == 0.0
    assert get_metric("vqa_accuracy_always").fn("WHITE", ["white"] * 10) == 1.0
    one = ({"q": "WHITE"}, {"q": ["white"] * 10})
    assert get_metric("vqa_accuracy").score_corpus(*one) == (0.0, [0.0])
    assert get_metric("vqa_accuracy_always").score_corpus(*one) == (1.0, [1.0])


def test_digits_are_ascii_as_in_python_2() -> None:
    # Python 2's \d (no re.UNICODE flag) is [0-9]: an Arabic-Indic "3.5" loses its period and
    # "3,5" in those digits is no thousands separator.
    assert process_punctuation("\u0663.\u0665") == "\u0663\u0665"
    assert process_punctuation("\u0663,\u0665") == "\u0663 \u0665"
    assert process_punctuation("3,5") == "35"


def test_lowercasing_is_python_2s() -> None:
    # Python 2's unicode.lower() maps U+0130 to a plain "i"; Python 3's adds U+0307.
    assert process_digit_article("\u0130stanbul") == "istanbul"
    assert vqa_accuracy("istanbul", ["\u0130stanbul"] * 9 + ["x"]) == 1.0


def test_official_matches_a_literal_port_of_the_loop() -> None:
    rng = random.Random(0)
    pool = ["2", "two", "Two.", "dog", "the dog", "a Dog!", "1,000", "1000", "yes", "no", "YES"]
    unanimous = 0
    for _ in range(400):
        if rng.random() < 0.3:
            refs = [rng.choice(pool)] * 10
            unanimous += 1
        else:
            refs = [rng.choice(pool) for _ in range(10)]
        pred = rng.choice(pool)
        assert vqa_accuracy(pred, refs) == pytest.approx(_official_loop(pred, refs))
        if len(set(refs)) > 1:  # the two modes agree where the official one normalises
            assert vqa_accuracy(pred, refs, normalization="always") == pytest.approx(
                _official_loop(pred, refs)
            )
    assert unanimous > 50


def test_corpus_is_the_mean() -> None:
    preds = {"a": "dog", "b": "cat"}
    refs = {"a": ["dog"] * 3 + ["cat"] * 7, "b": ["dog"] * 10}
    value, per_example = get_metric("vqa_accuracy").score_corpus(preds, refs)
    assert per_example == pytest.approx([0.9, 0.0])
    assert value == pytest.approx((0.9 + 0.0) / 2)


def test_errors() -> None:
    with pytest.raises(ValueError):
        vqa_accuracy("dog", [])
    with pytest.raises(ValueError, match="normalization must be one of"):
        vqa_accuracy("dog", ["dog"], normalization="never")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="same ids"):
        get_metric("vqa_accuracy").score_corpus({"a": "dog"}, {})
    with pytest.raises(ValueError, match="nothing to score"):
        get_metric("vqa_accuracy").score_corpus({}, {})

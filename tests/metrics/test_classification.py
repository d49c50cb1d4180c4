"""Label accuracy, and the metric registry that ties all metrics to task types."""

from __future__ import annotations

import subprocess
import sys

import pytest

from drum.metrics import METRICS, TASK_METRICS, MetricSpec, get_metric
from drum.metrics.classification import classification_accuracy, normalize_label


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Golden   Retriever. ", "golden retriever"),
        ("CAT", "cat"),
        ("cat !?", "cat"),
        ("tabby\tcat\n", "tabby cat"),
        ("c++", "c++"),  # only sentence punctuation is stripped
        ("St. Bernard", "st. bernard"),  # and only at the end
        ("", ""),
    ],
)
def test_normalize_label(raw: str, expected: str) -> None:
    assert normalize_label(raw) == expected


def test_classification_accuracy() -> None:
    assert classification_accuracy("Cat.", ["cat"]) == 1.0
    assert classification_accuracy("kitty", ["cat", "Kitty"]) == 1.0  # any reference counts
    assert classification_accuracy("dog", ["cat", "kitty"]) == 0.0
    assert classification_accuracy("a cat", ["cat"]) == 0.0  # no article stripping here
    with pytest.raises(ValueError):
        classification_accuracy("cat", [])


def test_accuracy_over_a_corpus_is_the_mean() -> None:
    preds = {"a": "cat", "b": "dog", "c": "bird"}
    refs = {"a": ["cat"], "b": ["Dog!"], "c": ["fish"]}
    value, per_example = get_metric("accuracy").score_corpus(preds, refs)
    assert per_example == [1.0, 1.0, 0.0]
    assert value == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="same ids"):
        get_metric("accuracy").score_corpus(preds, {"a": ["cat"], "b": ["dog"]})


# --- registry -----------------------------------------------------------------------------------


def test_registry_names_and_tasks() -> None:
    assert METRICS.names() == [
        "accuracy",
        "bleu4",
        "cider",
        "rouge_l",
        "vqa_accuracy",
        "vqa_accuracy_always",
    ]
    assert TASK_METRICS == {
        "vqa": ["vqa_accuracy"],
        "caption": ["cider", "bleu4", "rouge_l"],
        "classification": ["accuracy"],
    }
    for name in METRICS.names():
        spec = get_metric(name)
        assert isinstance(spec, MetricSpec)
        assert spec.name == name
        assert spec.higher_is_better
    assert [get_metric(name).level for name in TASK_METRICS["caption"]] == ["corpus"] * 3
    assert get_metric("vqa_accuracy").level == "example"
    with pytest.raises(KeyError):
        get_metric("meteor")


def test_score_corpus_handles_both_levels() -> None:
    preds = {"a": "cat", "b": "dog"}
    refs = {"a": ["cat"], "b": ["bird"]}
    assert get_metric("accuracy").score_corpus(preds, refs) == (0.5, [1.0, 0.0])
    score, per_example = get_metric("rouge_l").score_corpus(preds, refs)
    assert per_example == [1.0, 0.0]
    assert score == pytest.approx(0.5)
    with pytest.raises(ValueError):
        get_metric("accuracy").score_corpus(preds, {"a": ["cat"]})


def test_metric_spec_rejects_unknown_level() -> None:
    with pytest.raises(ValueError):
        MetricSpec(name="x", fn=len, higher_is_better=True, level="batch")  # type: ignore[arg-type]


def test_listing_metrics_does_not_import_pycocoevalcap() -> None:
    code = (
        "import sys, drum.metrics as m; m.METRICS.names(); "
        "sys.exit(int('pycocoevalcap' in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0

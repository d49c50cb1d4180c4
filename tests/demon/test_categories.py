"""``drum.demon.categories``: the task table and the reference's aggregation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drum.demon import (
    CATEGORIES,
    IMAGE_CHOICE_TASKS,
    TASK_QUESTION_TYPES,
    aggregate,
    category_score,
    task_score,
)

REFERENCE = json.loads((Path(__file__).parent / "fixtures" / "reference_outputs.json").read_text())


def test_seven_categories_of_29_tasks() -> None:
    tasks = [task for members in CATEGORIES.values() for task in members]
    assert len(CATEGORIES) == 7
    assert len(tasks) == len(set(tasks)) == 29
    assert set(TASK_QUESTION_TYPES) == set(tasks)
    assert sum(kind == "open-ended" for kind in TASK_QUESTION_TYPES.values()) == 11
    assert IMAGE_CHOICE_TASKS <= set(tasks)
    assert all(TASK_QUESTION_TYPES[task] == "multi-choice" for task in IMAGE_CHOICE_TASKS)
    # Spelled as i4_score.py spells them.
    assert "visual_story_telling_list" in CATEGORIES
    assert "nuscenes" in CATEGORIES["multi_image_reasoning"]


def test_task_score_is_the_sample_mean() -> None:
    assert task_score([1, 0, 1, 1]) == 0.75
    assert task_score([0.5, 0.25]) == 0.375
    with pytest.raises(ValueError, match="at least one"):
        task_score([])


def test_category_score_rounds_then_multiplies() -> None:
    assert category_score([0.427]) == 0.427 * 100 == 42.699999999999996
    assert category_score([0.1, 0.2, 0.3]) == 20.0  # mean 0.20000000000000004, rounded first
    assert category_score([0.123456, 0.5]) == round(0.311728, 5) * 100
    assert category_score([0.333335, 0.333335]) == 33.333  # round() is binary, not half-up


def test_category_score_matches_the_reference() -> None:
    for case in REFERENCE["category_mean"]:
        assert category_score(case["task_scores"]) == case["value"], case


def full_scores() -> dict[str, list[float]]:
    return {
        task: [1.0, 0.0] if task == "ALFRED" else [0.5]
        for members in CATEGORIES.values()
        for task in members
    }


def test_aggregate_all_tasks() -> None:
    scores = full_scores()
    scores["MMCoQA"] = [0.2, 0.4, 0.9]  # mean 0.5 too
    scores["AESOP"] = [1.0]  # story telling: (1 + 4 * 0.5) / 5 = 0.6
    result = aggregate(scores)
    assert result["missing"] == {}
    assert result["tasks"]["ALFRED"] == {"metric": "Rouge-L f", "score": 0.5, "n": 2}
    assert result["tasks"]["TQA"] == {"metric": "Accuracy", "score": 0.5, "n": 1}
    assert result["categories"]["multi_modal_dialogue"] == 50.0
    assert result["categories"]["visual_story_telling_list"] == round(0.6, 5) * 100
    assert list(result["categories"]) == list(CATEGORIES)


def test_aggregate_reports_only_complete_categories() -> None:
    scores = full_scores()
    del scores["ALFRED"], scores["VIST"], scores["PororoSV"]
    result = aggregate(scores)
    assert result["missing"] == {
        "multi_modal_dialogue": ["ALFRED"],
        "visual_story_telling_list": ["PororoSV", "VIST"],
    }
    assert set(result["categories"]) == set(CATEGORIES) - set(result["missing"])
    assert "MMCoQA" in result["tasks"]


def test_aggregate_tasks_outside_demon_need_their_question_type() -> None:
    with pytest.raises(ValueError, match="unknown question type"):
        aggregate({"my_task": [1.0]})
    result = aggregate({"my_task": [1.0, 0.0]}, question_types={"my_task": "multi-choice"})
    assert result["tasks"]["my_task"] == {"metric": "Accuracy", "score": 0.5, "n": 2}
    assert result["categories"] == {}
    with pytest.raises(ValueError, match="no scored sample"):
        aggregate({"TQA": []})


# A map for tasks outside the reference's 29, as the built-in tasks have one.
CUSTOM = {"pairs": ("A", "B"), "single": ("C",)}
CUSTOM_TYPES = {"A": "multi-choice", "B": "open-ended", "C": "multi-choice"}


def test_aggregate_by_a_custom_map_scores_complete_categories() -> None:
    scores = {"A": [1.0, 0.0, 1.0], "B": [0.427], "C": [0.0, 1.0]}
    result = aggregate(scores, CUSTOM_TYPES, categories=CUSTOM)
    a, b = 2 / 3, 0.427
    assert result["categories"] == {
        "pairs": round((a + b) / 2, 5) * 100,  # the reference's rounding, then x100
        "single": 50.0,
    }
    assert result["missing"] == {}
    assert result["category_members"] == {"pairs": ["A", "B"], "single": ["C"]}


def test_aggregate_by_a_custom_map_lists_a_missing_task_unscored() -> None:
    result = aggregate({"A": [1.0], "C": [1.0]}, CUSTOM_TYPES, categories=CUSTOM)
    assert result["missing"] == {"pairs": ["B"]}
    assert result["categories"] == {"single": 100.0}
    assert set(result["tasks"]) == {"A", "C"}


def test_aggregate_defaults_to_the_reference_map() -> None:
    result = aggregate(full_scores())
    assert result["category_members"] == {name: list(m) for name, m in CATEGORIES.items()}
    assert result == aggregate(full_scores(), categories=CATEGORIES)
    # A custom map replaces the reference's: its tasks are not categorised then.
    custom = aggregate(full_scores(), categories=CUSTOM)
    assert custom["categories"] == {} and set(custom["missing"]) == set(CUSTOM)

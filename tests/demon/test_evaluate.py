"""``drum.demon.evaluate``: a predictions folder scored against a release, by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drum.demon.categories import CATEGORIES
from drum.demon.evaluate import SAMPLE_RECORDS_FILE, SAMPLE_SCORES_FILE, SCORES_FILE, score_demon
from drum.demon.format import DemonFormatError, read_demon_task
from drum.demon.predictions import write_predictions
from drum.demon.scorers import DemonScoringError
from tests.demon.conftest import SCORING_PREDICTIONS, write_scoring_predictions

# By hand (docs/demon.md, "Scoring"): F = 2 * P * R / (P + R + 1e-8) over distinct words.
PERFECT = 2 * (1 * 1 / (2 + 1e-8))  # "madjid bougherra" both sides
RED = 2 * (1 / 9) / (2 / 3 + 1e-8)  # "a red bus" vs "the red car": only "red", P = R = 1/3
SOAP = 2 * (1 * 0.5) / (1.5 + 1e-8)  # 3 of the reference's 6 distinct words, all of ours
EXPECTED_SAMPLES = {
    "MMCoQA": [(0, PERFECT), (1, RED)],
    "ALFRED": [(0, SOAP)],
    "COMICS_Panel": [(0, 1.0), (1, 0.0)],  # the second names two images: 0
    "TQA": [("q0", 1.0), ("q1", 0.0)],  # "oxygen" is closest to "oxygen gas"
}


def test_scores_match_hand_computed_values(scoring_root: Path, tmp_path: Path) -> None:
    results = write_scoring_predictions(scoring_root, tmp_path / "results")
    scores = score_demon(scoring_root, results, tmp_path / "out")
    tasks = scores["tasks"]
    assert tasks["MMCoQA"]["score"] == pytest.approx((PERFECT + RED) / 2, abs=1e-12)
    assert tasks["ALFRED"]["score"] == pytest.approx(SOAP, abs=1e-12)
    assert tasks["COMICS_Panel"]["score"] == 0.5
    assert tasks["TQA"]["score"] == 0.5
    assert {task: entry["n"] for task, entry in tasks.items()} == {
        "ALFRED": 1, "COMICS_Panel": 2, "MMCoQA": 2, "TQA": 2,
    }  # fmt: skip
    assert tasks["MMCoQA"]["metric"] == "Rouge-L f"
    assert tasks["TQA"]["metric"] == "Accuracy"
    # Only multi_modal_dialogue has all its tasks: round(mean, 5) * 100.
    mean = ((PERFECT + RED) / 2 + SOAP) / 2
    assert scores["categories"] == {"multi_modal_dialogue": round(mean, 5) * 100}
    assert scores["categories"]["multi_modal_dialogue"] == pytest.approx(66.667)
    assert scores["missing"]["knowledge_grounded_qa"] == ["WebQA", "MultiModalQA"]
    for task, expected in EXPECTED_SAMPLES.items():
        lines = (tmp_path / "out" / task / SAMPLE_SCORES_FILE).read_text().splitlines()
        records = [json.loads(line) for line in lines]
        assert [r["sample_id"] for r in records] == [sid for sid, _ in expected]
        assert [r["score"] for r in records] == pytest.approx([s for _, s in expected], abs=1e-12)


def test_sample_records_hold_what_the_report_shows(scoring_root: Path, tmp_path: Path) -> None:
    results = write_scoring_predictions(scoring_root, tmp_path / "results")
    score_demon(scoring_root, results, tmp_path / "out")
    for name, expected in EXPECTED_SAMPLES.items():
        task = read_demon_task(scoring_root / name)
        lines = (tmp_path / "out" / name / SAMPLE_RECORDS_FILE).read_text().splitlines()
        records = [json.loads(line) for line in lines]
        assert [r["sample_id"] for r in records] == [sid for sid, _ in expected]
        assert [r["score"] for r in records] == pytest.approx([s for _, s in expected], abs=1e-12)
        for record, sample in zip(records, task.samples, strict=False):
            assert record["prediction"] == SCORING_PREDICTIONS[name][sample.sample_id]
            assert record["references"] == [sample.response]
            assert record["instruction"] == task.instructions[sample.instruction_id]
            assert record["context"] == sample.context
            assert record["images"] == [str(image.resolve()) for image in sample.images]
            assert all(Path(image).is_file() for image in record["images"])
            assert record["choices"] == (None if sample.choices is None else list(sample.choices))


def test_the_json_has_the_required_fields_and_the_extras(
    scoring_root: Path, tmp_path: Path
) -> None:
    results = write_scoring_predictions(scoring_root, tmp_path / "results")
    score_demon(scoring_root, results, tmp_path / "out")
    written = json.loads((tmp_path / "out" / SCORES_FILE).read_text())
    assert {"tasks", "categories"} <= set(written)
    assert set(written) == {
        "tasks", "categories", "missing", "category_members", "config", "provenance",
    }  # fmt: skip
    assert written["category_members"] == {name: list(m) for name, m in CATEGORIES.items()}
    for entry in written["tasks"].values():
        assert set(entry) == {"metric", "score", "n", "ci95"}
        low, high = entry["ci95"]
        assert 0.0 <= low <= entry["score"] <= high <= 1.0
    assert written["tasks"]["ALFRED"]["ci95"] == pytest.approx([SOAP, SOAP])
    assert all(isinstance(v, float) for v in written["categories"].values())
    assert written["provenance"]["versions"]
    assert written["config"]["data"] == str(scoring_root)


def test_only_tasks_with_predictions_are_scored_by_default(
    scoring_root: Path, tmp_path: Path
) -> None:
    results = write_scoring_predictions(scoring_root, tmp_path / "results", ["TQA"])
    scores = score_demon(scoring_root, results, tmp_path / "out")
    assert list(scores["tasks"]) == ["TQA"]
    assert scores["categories"] == {}


def test_a_named_task_without_predictions_is_an_error(scoring_root: Path, tmp_path: Path) -> None:
    results = write_scoring_predictions(scoring_root, tmp_path / "results", ["TQA"])
    with pytest.raises(DemonScoringError, match=r"no predictions for task\(s\) \['ALFRED'\]"):
        score_demon(scoring_root, results, tmp_path / "out", tasks=["TQA", "ALFRED"])
    with pytest.raises(DemonScoringError, match="no predictions under"):
        score_demon(scoring_root, tmp_path / "empty", tmp_path / "out")
    with pytest.raises(DemonFormatError, match="no task 'Nope'"):
        score_demon(scoring_root, results, tmp_path / "out", tasks=["Nope"])


def test_a_missing_sample_prediction_names_task_and_sample(
    scoring_root: Path, tmp_path: Path
) -> None:
    results = tmp_path / "results"
    write_predictions(results, read_demon_task(scoring_root / "TQA"), {"q0": "carbon dioxide"})
    with pytest.raises(DemonScoringError, match=r"'TQA': no prediction for 1 of 2 .*\['q1'\]"):
        score_demon(scoring_root, results, tmp_path / "out")
    assert not (tmp_path / "out" / SCORES_FILE).exists()
    # Its first sample alone can be scored.
    scores = score_demon(scoring_root, results, tmp_path / "out", max_per_task=1)
    assert scores["tasks"]["TQA"] | {"ci95": None} == {
        "metric": "Accuracy", "score": 1.0, "n": 1, "ci95": None,
    }  # fmt: skip


def test_predictions_of_another_version_of_the_task_are_refused(
    scoring_root: Path, tmp_path: Path
) -> None:
    results = write_scoring_predictions(scoring_root, tmp_path / "results", ["TQA"])
    path = results / "TQA" / "pred.json"
    records = json.loads(path.read_text())
    records[0]["gt_response"] = "oxygen gas"
    path.write_text(json.dumps(records))
    with pytest.raises(DemonFormatError, match="differs from core.json"):
        score_demon(scoring_root, results, tmp_path / "out")


def test_rescoring_overwrites_whole_files(scoring_root: Path, tmp_path: Path) -> None:
    results = write_scoring_predictions(scoring_root, tmp_path / "results")
    score_demon(scoring_root, results, tmp_path / "out")
    task = read_demon_task(scoring_root / "TQA")
    write_predictions(results, task, {**SCORING_PREDICTIONS["TQA"], "q1": "carbon dioxide"})
    scores = score_demon(scoring_root, results, tmp_path / "out")
    assert scores["tasks"]["TQA"]["score"] == 1.0
    assert not [p for p in (tmp_path / "out").rglob("*.tmp")]


def test_score_demon_aggregates_by_the_given_categories(scoring_root: Path, tmp_path: Path) -> None:
    results = write_scoring_predictions(scoring_root, tmp_path / "results")
    categories = {"dialogue": ("MMCoQA", "ALFRED"), "qa": ("TQA", "WebQA")}
    scores = score_demon(scoring_root, results, tmp_path / "out", categories=categories)
    written = json.loads((tmp_path / "out" / SCORES_FILE).read_text())
    assert written["category_members"] == {"dialogue": ["MMCoQA", "ALFRED"], "qa": ["TQA", "WebQA"]}
    assert list(written["categories"]) == ["dialogue"]
    assert written["categories"]["dialogue"] == scores["categories"]["dialogue"]
    assert written["categories"]["dialogue"] == pytest.approx(66.667)
    assert written["missing"] == {"qa": ["WebQA"]}

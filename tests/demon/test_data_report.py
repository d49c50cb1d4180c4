"""The DEMON reader as permissive as the reference: samples that look wrong are read, scored as
``evaluate.py`` scores them and listed in ``data_report.json``; only what the reference itself
cannot process is refused, with its reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from drum.demon.data_report import (
    DATA_REPORT_FILE,
    DemonDataWarning,
    task_data_report,
)
from drum.demon.evaluate import SAMPLE_SCORES_FILE, score_demon
from drum.demon.format import read_demon_task
from drum.demon.predictions import write_predictions
from drum.demon.prompt import demon_prompt
from drum.demon.scorers import DemonScoringError, score_image_choice
from drum.lvlm.prompt import TextPart
from tests.demon.conftest import SCORING_PREDICTIONS, write_scoring_predictions


def _edit(root: Path, task: str, edit: Any) -> None:
    core = root / task / "core" / "core.json"
    record = json.loads(core.read_text(encoding="utf-8"))
    edit(record["data"])
    core.write_text(json.dumps(record), encoding="utf-8")


def _scores(out: Path, task: str) -> list[float]:
    lines = (out / task / SAMPLE_SCORES_FILE).read_text().splitlines()
    return [json.loads(line)["score"] for line in lines]


def test_an_image_choice_answer_outside_its_choices_is_scored_as_the_reference(
    scoring_root: Path, tmp_path: Path
) -> None:
    # COMICS_Panel: the reference's evaluate_multi_choice_image never reads the choice list.
    _edit(scoring_root, "COMICS_Panel", lambda d: d[1].update(response="Image E"))
    results = tmp_path / "results"
    predictions = {0: "Image B", 1: "image e, the last panel"}
    write_predictions(results, read_demon_task(scoring_root / "COMICS_Panel"), predictions)
    with pytest.warns(DemonDataWarning) as caught:
        scores = score_demon(scoring_root, results, tmp_path / "out")
    expected = [
        score_image_choice(predictions[0], "Image B"),
        score_image_choice(predictions[1], "Image E"),
    ]
    assert expected == [1.0, 1.0]
    assert _scores(tmp_path / "out", "COMICS_Panel") == expected
    assert scores["tasks"]["COMICS_Panel"]["score"] == 1.0
    report = json.loads((tmp_path / "out" / DATA_REPORT_FILE).read_text())
    assert report["tasks"]["COMICS_Panel"]["problems"] == {
        "response_not_in_choices": {"count": 1, "sample_ids": [1]}
    }
    assert [str(w.message) for w in caught] == [
        "DEMON task 'COMICS_Panel': 1 of 2 samples look wrong (response_not_in_choices: 1, "
        "sample_ids [1]); read as the reference reads them, listed in data_report.json"
    ]


def test_a_placeholder_with_no_image_is_read_reported_and_kept_as_text(
    scoring_root: Path, tmp_path: Path
) -> None:
    _edit(scoring_root, "MMCoQA", lambda d: d[1]["task_instance"].update(context="{image#9} Who?"))
    task = read_demon_task(scoring_root / "MMCoQA")
    report = task_data_report(task)
    assert report.problems == {"placeholder_out_of_range": [1]}
    # As the reference's inference script: the placeholder stays in the text, the images follow.
    parts = demon_prompt(task, task.samples[1]).query.parts
    assert isinstance(parts[0], TextPart) and "{image#9} Who?" in parts[0].text
    results = write_scoring_predictions(scoring_root, tmp_path / "results", ["MMCoQA"])
    with pytest.warns(DemonDataWarning, match="placeholder_out_of_range: 1, sample_ids \\[1\\]"):
        score_demon(scoring_root, results, tmp_path / "out")
    assert len(_scores(tmp_path / "out", "MMCoQA")) == 2


def test_a_tfidf_answer_outside_its_choices_is_refused_with_the_references_reason(
    scoring_root: Path, tmp_path: Path
) -> None:
    # TQA goes through judge_multi_choice, whose assert gt_ans in choice_list stops the task.
    _edit(scoring_root, "TQA", lambda d: d[1].update(response="water"))
    task = read_demon_task(scoring_root / "TQA")  # read, not refused
    assert task_data_report(task).problems == {"response_not_in_choices": ["q1"]}
    results = tmp_path / "results"
    write_predictions(results, task, SCORING_PREDICTIONS["TQA"])
    with pytest.raises(DemonScoringError, match=r"sample 'q1': .*assert gt_ans in choice_list"):
        score_demon(scoring_root, results, tmp_path / "out")


def test_a_response_matching_only_after_normalisation_is_not_reported(
    scoring_root: Path, tmp_path: Path
) -> None:
    # The reference's assert compares normalised texts: "Carbon Dioxide." is "carbon dioxide".
    _edit(scoring_root, "TQA", lambda d: d[1].update(response="Carbon Dioxide."))
    task = read_demon_task(scoring_root / "TQA")
    assert task_data_report(task).summary() is None
    results = tmp_path / "results"
    write_predictions(results, task, SCORING_PREDICTIONS["TQA"])
    assert score_demon(scoring_root, results, tmp_path / "out")["tasks"]["TQA"]["score"] == 0.5


def test_an_empty_question_type_is_said_once_per_task(scoring_root: Path, tmp_path: Path) -> None:
    results = write_scoring_predictions(scoring_root, tmp_path / "results")
    with pytest.warns(DemonDataWarning) as caught:
        score_demon(scoring_root, results, tmp_path / "out")
    lines = [str(w.message) for w in caught if issubclass(w.category, DemonDataWarning)]
    assert len(lines) == 1 and lines[0].startswith("DEMON task 'ALFRED': metadata.question_type")
    assert "scored as open-ended (ROUGE-L)" in lines[0] and "Dataset not supported" in lines[0]
    report = json.loads((tmp_path / "out" / DATA_REPORT_FILE).read_text())
    assert set(report["tasks"]["ALFRED"]["notes"]) == {"empty_question_type"}
    assert report["tasks"]["TQA"] == {
        "n_samples": 2, "question_type": "multi-choice", "problems": {}, "notes": {},
    }  # fmt: skip


def test_a_multi_choice_task_with_an_empty_type_says_how_it_is_scored(
    scoring_root: Path,
) -> None:
    core = scoring_root / "TQA" / "core" / "core.json"
    record = json.loads(core.read_text())
    record["metadata"]["question_type"] = ""
    core.write_text(json.dumps(record))
    note = task_data_report(read_demon_task(scoring_root / "TQA")).notes["empty_question_type"]
    assert "scored as open-ended (ROUGE-L); DEMON lists TQA as multi-choice" in note


def test_in_a_tfidf_task_only_the_references_comparison_counts(demon_root: Path) -> None:
    # MultiModalQA is scored by TF-IDF: "Image B" is not "image b: image#2" once normalised, so
    # the reference's assert fails there; as an image-choice label it would be in the list.
    task = read_demon_task(demon_root / "MultiModalQA")
    assert task_data_report(task).problems == {"response_not_in_choices": [1]}

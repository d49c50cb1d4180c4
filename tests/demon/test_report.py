"""``drum.demon.report``: markdown tables and bar plots rendered from ``demon_scores.json``."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from drum.demon.categories import CATEGORIES
from drum.demon.evaluate import SCORES_FILE, score_demon
from drum.demon.report import OTHER, category_tasks, markdown_report, render_report
from tests.demon.conftest import write_scoring_predictions


def test_report_files_are_rendered_from_the_json(scoring_root: Path, tmp_path: Path) -> None:
    results = write_scoring_predictions(scoring_root, tmp_path / "results")
    score_demon(scoring_root, results, tmp_path / "out")
    markdown, png = render_report(tmp_path / "out" / SCORES_FILE)
    assert (markdown.name, png.name) == ("demon_scores.md", "demon_scores.png")
    text = markdown.read_text()
    assert "| multi_modal_dialogue | 66.67 | 2/2 |" in text
    assert "| knowledge_grounded_qa | - (missing WebQA, MultiModalQA) | 1/3 |" in text
    assert "## multi_modal_cloze" in text
    assert "| COMICS_Panel | Accuracy | 2 | 50.0 |" in text
    assert "| ALFRED | Rouge-L f | 1 | 66.7 | [66.7, 66.7] |" in text
    assert "![DEMON scores](demon_scores.png)" in text
    with Image.open(png) as image:
        assert image.format == "PNG" and image.width > 3 * image.height // 2


def test_the_report_reads_only_the_json(tmp_path: Path) -> None:
    # Hand-written scores: a task of no category, and entries without the optional fields.
    scores = {
        "tasks": {
            "TQA": {"metric": "Accuracy", "score": 0.25, "n": 4},
            "MyTask": {"metric": "Accuracy", "score": 1.0, "n": 1},
        },
        "categories": {},
    }
    path = tmp_path / SCORES_FILE
    path.write_text(json.dumps(scores))
    assert category_tasks(scores) == {"knowledge_grounded_qa": ["TQA"], OTHER: ["MyTask"]}
    text = render_report(path)[0].read_text()
    assert "| TQA | Accuracy | 4 | 25.0 | [25.0, 25.0] |" in text
    assert f"## {OTHER}" in text and "| MyTask |" in text
    assert markdown_report(scores) in text


def test_the_report_groups_by_the_recorded_category_members(tmp_path: Path) -> None:
    scores = {
        "tasks": {
            "ShapeChat": {"metric": "Rouge-L f", "score": 0.5, "n": 2},
            "SameCount": {"metric": "Accuracy", "score": 1.0, "n": 2},
            "TQA": {"metric": "Accuracy", "score": 0.25, "n": 4},
        },
        "categories": {"multi_modal_dialogue": 50.0},
        "missing": {"multi_image_reasoning": ["WhichImage"]},
        "category_members": {
            "multi_modal_dialogue": ["ShapeChat"],
            "multi_image_reasoning": ["SameCount", "WhichImage"],
        },
    }
    assert category_tasks(scores) == {
        "multi_modal_dialogue": ["ShapeChat"],
        "multi_image_reasoning": ["SameCount"],
        OTHER: ["TQA"],  # a reference task, but not in the recorded map
    }
    text = markdown_report(scores)
    assert "| multi_modal_dialogue | 50.00 | 1/1 |" in text
    assert "| multi_image_reasoning | - (missing WhichImage) | 1/2 |" in text
    assert "knowledge_grounded_qa" not in text  # the reference's categories are not listed
    assert "## multi_image_reasoning" in text and f"## {OTHER}" in text


def test_a_json_without_category_members_is_grouped_by_the_reference(tmp_path: Path) -> None:
    scores = {
        "tasks": {"ShapeChat": {"metric": "Rouge-L f", "score": 0.5, "n": 2}},
        "categories": {},
        "missing": {"multi_modal_dialogue": ["MMCoQA", "ALFRED"]},
    }
    assert category_tasks(scores) == {OTHER: ["ShapeChat"]}
    text = markdown_report(scores)
    assert "| multi_modal_dialogue | - (missing MMCoQA, ALFRED) | 0/2 |" in text
    assert all(f"| {name} | - (missing" in text for name in CATEGORIES)

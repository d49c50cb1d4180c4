"""A tiny DEMON release written by the tests: four tasks in the release layout, each with
32x32 images, covering what the task READMEs show (a folder name that is not the dataset's,
tables, an integer response, a repeated image path, an empty question type)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image


def write_image(path: Path, index: int) -> None:
    """A 32x32 image of its own colour (PNG or JPEG by the name's suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 32), (index * 40 % 256, 255 - index * 30 % 256, 90)).save(path)


def write_release_task(
    root: Path, folder: str, metadata: dict[str, Any], data: list[dict[str, Any]]
) -> Path:
    """``<root>/<folder>/core/core.json`` and every image its samples name; the task folder."""
    core = root / folder / "core"
    for sample in data:
        # Tests break items on purpose: write only the images of well-formed ones.
        for name in sample.get("task_instance", {}).get("images_path", []):
            if ".." not in name and not (core / "images" / name).exists():
                write_image(core / "images" / name, len(list((core / "images").glob("*"))))
    core.mkdir(parents=True, exist_ok=True)
    record = {"metadata": {"num_sample": len(data), **metadata}, "data": data}
    (core / "core.json").write_text(json.dumps(record, indent=4, ensure_ascii=False))
    return root / folder


def _meta(dataset: str, instructions: list[str], question_type: str) -> dict[str, Any]:
    return {
        "dataset": dataset,
        "split": "core",
        "task_instruction": instructions,
        "question_type": question_type,
    }


MMQA = _meta(
    "MMQA",
    [
        "Given a collection of relevant data, answer the question. ",
        "Utilizing the information, could you answer the following question?",
    ],
    "multi-choice",
)
MMQA_DATA = [
    {
        "sample_id": 0,
        "task_instruction_id": 1,
        "task_instance": {
            "context": "Global Table: {table#1} Context: {image#2} Question: What sports?",
            "images_path": ["0.png", "1.jpg"],
            "choice_list": ["soccer", "baseball"],
        },
        "response": "baseball",
    },
    {
        "sample_id": 1,
        "task_instruction_id": 0,
        "task_instance": {
            "context": "{image#1}{image#2}Question: Which one is the Gøtu team?",
            "images_path": ["2.png", "3.png"],
            "choice_list": ["Image A: {image#1}", "Image B: {image#2}"],
        },
        "response": "Image B",
    },
]
FASHION = _meta("Fashion200K", ["How many suits can the five pictures combine?  "], "multi-choice")
FASHION_DATA = [
    {
        "sample_id": 0,
        "task_instruction_id": 0,
        "task_instance": {
            "context": "{image#1}{image#2}{image#3}Choice List:['0','1','2'] Your answer is:",
            "images_path": ["0.jpg", "1.jpg", "2.jpg"],
            "choice_list": ["0", "1", "2"],
        },
        "response": 2,
    }
]
MMCOQA = _meta("MMCoQA", ["Provided with a diverse set of relevant data, answer."], "open-ended")
MMCOQA_DATA = [
    {
        "sample_id": 2,
        "task_instruction_id": 0,
        "task_instance": {
            "context": "Global Table: {table#1} History: {table#2} Current: {image#3} Answer:",
            "images_path": ["2.png", "2.png", "3.jpg"],
        },
        "response": "Madjid Bougherra. ",
    }
]
ALFRED = _meta("ALFRED", ["Decide your immediate course of action."], "")
ALFRED_DATA = [
    {
        "sample_id": 3,
        "task_instruction_id": 0,
        "task_instance": {
            "context": "Goal: Place a soap. {image#1}Step#1: Turn left. {image#2} Current Step: ",
            "images_path": ["6.jpg", "7.jpg"],
        },
        "response": "Place the soap container on the counter.",
    }
]
RELEASE = {
    "MultiModalQA": (MMQA, MMQA_DATA),
    "Fashion200K": (FASHION, FASHION_DATA),
    "MMCoQA": (MMCOQA, MMCOQA_DATA),
    "ALFRED": (ALFRED, ALFRED_DATA),
}


@pytest.fixture
def demon_root(tmp_path: Path) -> Path:
    """A DEMON-Core-like root holding the four tasks of ``RELEASE``."""
    root = tmp_path / "DEMON-Core"
    for folder, (metadata, data) in RELEASE.items():
        write_release_task(root, folder, metadata, json.loads(json.dumps(data)))
    return root


# ----------------------------------------------------------------------------- scoring
# A release the reference can score end to end, 2-4 images per prompt: one task per scorer
# (ROUGE-L, TF-IDF choice, image choice) and ALFRED's empty question type, so that the
# multi_modal_dialogue category (MMCoQA + ALFRED) is complete.

SCORING_RELEASE: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {
    "MMCoQA": (
        _meta("MMCoQA", ["Answer the question. "], "open-ended"),
        [
            {
                "sample_id": 0,
                "task_instruction_id": 0,
                "task_instance": {
                    "context": "Table: {table#1} History: {image#2} Now: {image#3} Who?",
                    "images_path": ["0.png", "1.png", "2.png"],
                },
                "response": "Madjid Bougherra",
            },
            {
                "sample_id": 1,
                "task_instruction_id": 0,
                "task_instance": {
                    "context": "{image#1}{image#2} What is parked?",
                    "images_path": ["3.png", "4.png"],
                },
                "response": "the red car",
            },
        ],
    ),
    "ALFRED": (
        _meta("ALFRED", ["Decide your next action."], ""),
        [
            {
                "sample_id": 0,
                "task_instruction_id": 0,
                "task_instance": {
                    "context": "Goal: soap. {image#1} Step#1: left. {image#2} Current Step: ",
                    "images_path": ["0.jpg", "1.jpg"],
                },
                "response": "Place the soap container on the counter.",
            }
        ],
    ),
    "COMICS_Panel": (
        _meta("COMICS", ["Pick the next panel. "], "multi-choice"),
        [
            {
                "sample_id": 0,
                "task_instruction_id": 0,
                "task_instance": {
                    "context": "{image#1}{image#2} Which panel follows?",
                    "images_path": ["0.png", "1.png", "2.png", "3.png"],
                    "choice_list": ["Image A: {image#3}", "Image B: {image#4}"],
                },
                "response": "Image B",
            },
            {
                "sample_id": 1,
                "task_instruction_id": 0,
                "task_instance": {
                    "context": "{image#1}{image#2} Which panel follows?",
                    "images_path": ["4.png", "5.png", "6.png", "7.png"],
                    "choice_list": ["Image A: {image#3}", "Image B: {image#4}"],
                },
                "response": "Image A",
            },
        ],
    ),
    "TQA": (
        _meta("TQA", ["Answer from the diagrams. "], "multi-choice"),
        [
            {
                "sample_id": "q0",
                "task_instruction_id": 0,
                "task_instance": {
                    "context": "{image#1}{image#2} What do plants take in?",
                    "images_path": ["0.png", "1.png"],
                    "choice_list": ["oxygen gas", "carbon dioxide"],
                },
                "response": "carbon dioxide",
            },
            {
                "sample_id": "q1",
                "task_instruction_id": 0,
                "task_instance": {
                    "context": "{image#1}{image#2}{image#3} What do plants give off?",
                    "images_path": ["2.png", "3.png", "4.png"],
                    "choice_list": ["oxygen gas", "carbon dioxide"],
                },
                "response": "carbon dioxide",
            },
        ],
    ),
}

# Predictions for SCORING_RELEASE and each sample's score by hand (see test_evaluate.py).
SCORING_PREDICTIONS: dict[str, dict[Any, str]] = {
    "MMCoQA": {0: "Madjid Bougherra.", 1: "a red bus"},
    "ALFRED": {0: "place the soap"},
    "COMICS_Panel": {0: "Image B", 1: "image a or image b"},
    "TQA": {"q0": "carbon dioxide", "q1": "i think oxygen"},
}


@pytest.fixture
def scoring_root(tmp_path: Path) -> Path:
    """A DEMON root holding the four tasks of ``SCORING_RELEASE``."""
    root = tmp_path / "DEMON-Score"
    for folder, (metadata, data) in SCORING_RELEASE.items():
        write_release_task(root, folder, metadata, json.loads(json.dumps(data)))
    return root


def write_scoring_predictions(root: Path, results: Path, tasks: list[str] | None = None) -> Path:
    """``<results>/<Task>/pred.json`` of ``SCORING_PREDICTIONS`` (the named tasks, or all)."""
    from drum.demon.format import read_demon_task
    from drum.demon.predictions import write_predictions

    for name in tasks or list(SCORING_PREDICTIONS):
        write_predictions(results, read_demon_task(root / name), SCORING_PREDICTIONS[name])
    return results


@pytest.fixture(scope="session")
def tiny_lvlm_dirs(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``family -> saved tiny random LVLM directory`` (``tests/lvlm/tiny_lvlms.py``), each
    built at most once per session."""
    from tests.lvlm import tiny_lvlms

    built: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in built:
            path = tmp_path_factory.mktemp(f"demon_{family}")
            built[family] = tiny_lvlms.BUILDERS[family](path).path
        return built[family]

    return get

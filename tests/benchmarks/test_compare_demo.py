"""``benchmarks/compare_demo.py``: two demo runs' tables compared cell for cell."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "compare_demo.py"


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("compare_demo", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(
    root: Path, code: str, accuracy: float, prediction: str, gain: float = 4.45918736, git: str = ""
) -> Path:
    results = root / "results"
    results.mkdir(parents=True)
    git_line = f"- git: {git}\n" if git else ""
    (results / "icl_results.md").write_text(
        f"- lvlm: `{code}/lvlm` (llava-1)\n{git_line}| {accuracy} |\n"
    )
    row = {"task": "vqa", "strategy": "drum", "shots": 1, "seed": None}
    metric = {"vqa_accuracy": {"value": accuracy, "ci95": [0.1, 0.9]}}
    icl = {**row, "metric": metric, "n_queries": 1, "truncated_prompts": 0, "seconds": 1.0}
    (results / "icl_results.json").write_text(json.dumps({"rows": [icl]}))
    quality = {"hit@4": 0.5, "retrieval_seconds": accuracy}  # a timing: not compared
    (results / "retrieval_quality.json").write_text(json.dumps({"rows": [quality]}))
    record = {**row, "query_id": "q", "demo_ids": ["d"], "prediction": prediction, "scores": {}}
    (results / "icl_queries.jsonl").write_text(json.dumps(record) + "\n")
    (results / "demo_timings.json").write_text(json.dumps({"icl_seconds": 2.0}))
    mining = root / "drum" / "key"
    mining.mkdir(parents=True)
    feedback = {"vqa": {"best_gain": gain}}
    rounds = [{"round": 0, "validation": {"vqa": {"hit@4": 0.5}}, "feedback": feedback}]
    (mining / "mining.json").write_text(json.dumps({"rounds": rounds}))
    return root


def test_same_tables_pass_and_a_changed_cell_is_found(tmp_path: Path) -> None:
    compare = _module().compare
    before = _run(tmp_path / "a", "/code/a", 0.5, "blue")
    same = _run(tmp_path / "b", "/code/b", 0.5, "blue")  # only the models' path differs
    assert all(ok for _, ok, _ in compare(before, same))
    changed = _run(tmp_path / "c", "/code/a", 0.6, "red")
    failed = {label for label, ok, _ in compare(before, changed) if not ok}
    assert failed == {
        "results/icl_results.md",
        "icl_results.json rows",
        "icl_queries.jsonl predictions and scores",
    }


def test_provenance_and_float_rounding_of_the_feedback_statistics_are_not_differences(
    tmp_path: Path,
) -> None:
    compare = _module().compare
    before = _run(tmp_path / "a", "/code/a", 0.5, "blue", gain=4.4591873659)
    # a git line the other run lacks; a feedback mean moved in its 9th significant digit
    after = _run(tmp_path / "b", "/code/b", 0.5, "blue", gain=4.4591873674, git="8952f44")
    assert all(ok for _, ok, _ in compare(before, after))
    moved = _run(tmp_path / "c", "/code/a", 0.5, "blue", gain=4.46)
    failed = {label for label, ok, _ in compare(before, moved) if not ok}
    assert failed == {"mining rounds (validation, feedback)"}

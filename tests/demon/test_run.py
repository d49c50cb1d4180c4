"""``drum.demon.run``: greedy predictions per batch into pred.json, resumed after a kill without
regenerating anything saved, then scored; on FakeLVLM and on tiny random real backends."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from drum.demon.evaluate import SAMPLE_SCORES_FILE, SCORES_FILE
from drum.demon.format import read_demon_root
from drum.demon.predictions import read_predictions
from drum.demon.run import RUN_FILE, DemonRunError, evaluate_demon, pending_samples
from drum.lvlm.prompt import ICLPrompt
from drum.testing import FakeLVLM, SpyLVLM

N_SAMPLES = 7  # SCORING_RELEASE: 2 + 1 + 2 + 2


def reply(prompt: ICLPrompt) -> str:
    """Right on TQA's first sample and COMICS' first, wrong elsewhere."""
    text = prompt.query.text
    if "take in" in text:
        return "carbon dioxide"
    if "panel" in text:
        return "Image B"
    return "the red car"


def prompt_texts(lvlm: FakeLVLM | SpyLVLM) -> list[str]:
    return [prompt.query.text for prompt in lvlm.generated]


def test_predictions_are_written_in_the_reference_format_and_scored(
    scoring_root: Path, tmp_path: Path
) -> None:
    tasks = read_demon_root(scoring_root)
    lvlm = FakeLVLM(reply=reply)
    scores = evaluate_demon(lvlm, tasks, tmp_path / "out", batch_size=2, progress=False)
    # One call per batch of at most 2, per task: ALFRED 1, COMICS 1, MMCoQA 1, TQA 1.
    assert lvlm.calls == 4 and len(lvlm.generated) == N_SAMPLES
    assert sorted(len(p.query.images) for p in lvlm.generated) == [2, 2, 2, 3, 3, 4, 4]
    records = json.loads((tmp_path / "out" / "TQA" / "pred.json").read_text())
    assert records == [
        {"sample_id": "q0", "pred_response": "carbon dioxide", "gt_response": "carbon dioxide"},
        {"sample_id": "q1", "pred_response": "the red car", "gt_response": "carbon dioxide"},
    ]
    assert scores["tasks"]["TQA"]["score"] == 0.5
    assert scores["tasks"]["COMICS_Panel"]["score"] == 0.5  # "Image B" is right only for the first
    assert scores["config"]["model"] == "fake-lvlm"
    assert scores["config"]["decoding"] == "greedy"
    assert (tmp_path / "out" / "MMCoQA" / SAMPLE_SCORES_FILE).is_file()
    assert json.loads((tmp_path / "out" / SCORES_FILE).read_text())["tasks"] == scores["tasks"]


def test_a_killed_run_resumes_and_regenerates_nothing_saved(
    scoring_root: Path, tmp_path: Path
) -> None:
    tasks = read_demon_root(scoring_root)
    out = tmp_path / "out"
    killed = FakeLVLM(reply=reply, fail_on_call=4)
    with pytest.raises(RuntimeError, match="killed"):
        evaluate_demon(killed, tasks, out, batch_size=1, progress=False)
    # Three batches of one were saved: ALFRED's sample and both of COMICS_Panel's.
    saved = {task.name: read_predictions(out, task) for task in tasks if (out / task.name).exists()}
    assert {name: len(p) for name, p in saved.items()} == {"ALFRED": 1, "COMICS_Panel": 2}
    assert not (out / SCORES_FILE).exists()
    assert [len(pending_samples(task, out)) for task in tasks] == [0, 0, 2, 2]

    resumed = FakeLVLM(reply=reply)
    scores = evaluate_demon(resumed, tasks, out, batch_size=1, progress=False)
    assert len(resumed.generated) == N_SAMPLES - 3
    assert not set(prompt_texts(resumed)) & set(prompt_texts(killed))
    assert scores["config"]["generated_this_run"] == 4
    uninterrupted = evaluate_demon(
        FakeLVLM(reply=reply), tasks, tmp_path / "whole", batch_size=3, progress=False
    )
    assert {t: e["score"] for t, e in scores["tasks"].items()} == {
        t: e["score"] for t, e in uninterrupted["tasks"].items()
    }
    # Nothing left: a third run generates nothing.
    again = FakeLVLM(reply=reply)
    evaluate_demon(again, tasks, out, progress=False)
    assert again.calls == 0


def test_another_model_cannot_resume_into_the_folder(scoring_root: Path, tmp_path: Path) -> None:
    tasks = read_demon_root(scoring_root, ["TQA"])
    evaluate_demon(FakeLVLM(reply=reply), tasks, tmp_path / "out", progress=False)
    assert json.loads((tmp_path / "out" / RUN_FILE).read_text())["model"] == "fake-lvlm"
    with pytest.raises(DemonRunError, match="another run \\(model"):
        evaluate_demon(
            FakeLVLM(reply=reply, fingerprint="other"), tasks, tmp_path / "out", progress=False
        )
    with pytest.raises(DemonRunError, match="max_new_tokens"):
        evaluate_demon(
            FakeLVLM(reply=reply), tasks, tmp_path / "out", max_new_tokens=5, progress=False
        )


def test_max_per_task_generates_and_scores_the_first_samples(
    scoring_root: Path, tmp_path: Path
) -> None:
    tasks = read_demon_root(scoring_root)
    lvlm = FakeLVLM(reply=reply)
    scores = evaluate_demon(lvlm, tasks, tmp_path / "out", max_per_task=1, progress=False)
    assert len(lvlm.generated) == 4
    assert {task: entry["n"] for task, entry in scores["tasks"].items()} == dict.fromkeys(
        ["ALFRED", "COMICS_Panel", "MMCoQA", "TQA"], 1
    )
    assert scores["tasks"]["TQA"]["score"] == 1.0
    # Raising the limit later generates only the new samples.
    more = FakeLVLM(reply=reply)
    evaluate_demon(more, tasks, tmp_path / "out", max_per_task=2, progress=False)
    assert len(more.generated) == 3


BACKENDS = [
    "builtin", "llava", "idefics3", "qwen2_vl", "qwen2_5_vl",
    "qwen3_vl", "gemma3", "llava_onevision", "idefics2",
]  # fmt: skip


def model_dir(family: str, tiny_lvlm_dirs: Callable[[str], Path]) -> Path:
    from drum.builtin.assets import ASSETS_DIR

    return ASSETS_DIR / "lvlm" if family == "builtin" else tiny_lvlm_dirs(family)


@pytest.mark.parametrize("family", BACKENDS)
def test_every_backend_runs_end_to_end(
    family: str,
    scoring_root: Path,
    tmp_path: Path,
    tiny_lvlm_dirs: Callable[[str], Path],
) -> None:
    from drum.lvlm.hf import HFLVLM

    tasks = read_demon_root(scoring_root, ["COMICS_Panel", "TQA"])
    lvlm = SpyLVLM(HFLVLM(model_dir(family, tiny_lvlm_dirs)))
    scores = evaluate_demon(
        lvlm, tasks, tmp_path / "out", batch_size=3, max_new_tokens=3, progress=False
    )
    assert sorted(len(p.query.images) for p in lvlm.generated) == [2, 3, 4, 4]
    for task in tasks:
        predictions = read_predictions(tmp_path / "out", task)
        assert len(predictions) == 2 and all(isinstance(p, str) for p in predictions.values())
    assert set(scores["tasks"]) == {"COMICS_Panel", "TQA"}
    assert scores["config"]["model"] == lvlm.fingerprint


@pytest.mark.slow
@pytest.mark.parametrize("family", ["llava", "qwen2_vl"])
def test_a_real_backend_killed_mid_run_resumes_to_the_uninterrupted_predictions(
    family: str,
    scoring_root: Path,
    tmp_path: Path,
    tiny_lvlm_dirs: Callable[[str], Path],
) -> None:
    from drum.lvlm.hf import HFLVLM

    tasks = read_demon_root(scoring_root)
    inner = HFLVLM(tiny_lvlm_dirs(family))
    run = {"batch_size": 2, "max_new_tokens": 4, "progress": False}
    killed = SpyLVLM(inner, fail_on_call=3)
    with pytest.raises(RuntimeError, match="killed"):
        evaluate_demon(killed, tasks, tmp_path / "out", **run)
    resumed = SpyLVLM(inner)
    evaluate_demon(resumed, tasks, tmp_path / "out", **run)
    assert len(killed.generated) + len(resumed.generated) == N_SAMPLES
    assert not set(prompt_texts(resumed)) & set(prompt_texts(killed))
    evaluate_demon(SpyLVLM(inner), tasks, tmp_path / "whole", **run)
    for task in tasks:
        assert read_predictions(tmp_path / "out", task) == read_predictions(
            tmp_path / "whole", task
        )


def test_a_prompt_longer_than_the_context_names_task_and_samples(
    scoring_root: Path, tmp_path: Path, tiny_lvlm_dirs: Callable[[str], Path]
) -> None:
    from drum.lvlm.hf import HFLVLM

    tasks = read_demon_root(scoring_root, ["TQA"])
    lvlm = HFLVLM(tiny_lvlm_dirs("llava"))  # a 1,024-token context
    with pytest.raises(DemonRunError, match=r"'TQA', sample_ids \['q0', 'q1'\]: .*context"):
        evaluate_demon(lvlm, tasks, tmp_path / "out", max_new_tokens=5000, progress=False)

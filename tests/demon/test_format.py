"""The DEMON release layout: what the READMEs show reads, writes back as it was, and every
broken input is one error naming the file, the sample and what was expected; predictions use
the reference scripts' own file."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from drum.demon.format import (
    DemonFormatError,
    DemonFormatWarning,
    DemonSample,
    DemonTask,
    read_demon_root,
    read_demon_task,
    write_demon_task,
)
from drum.demon.predictions import (
    append_predictions,
    predictions_path,
    read_predictions,
    write_predictions,
)
from tests.demon.conftest import MMCOQA, MMCOQA_DATA, MMQA, MMQA_DATA, RELEASE, write_release_task


def _core(task_dir: Path) -> dict[str, Any]:
    return json.loads((task_dir / "core" / "core.json").read_text(encoding="utf-8"))


def _relocated(task: DemonTask, images_dir: Path) -> DemonTask:
    """``task`` with its images at ``images_dir`` (same names)."""
    samples = tuple(
        dataclasses.replace(s, images=tuple(images_dir / n for n in s.image_names or ()))
        for s in task.samples
    )
    return dataclasses.replace(task, samples=samples)


def _broken(root: Path, edit: Any, metadata: dict[str, Any] = MMQA) -> Path:
    """The MultiModalQA task of the fixture with ``edit(data)`` applied; its core.json."""
    data = copy.deepcopy(MMQA_DATA)
    edit(data)
    return write_release_task(root, "MultiModalQA", metadata, data) / "core" / "core.json"


# ----------------------------------------------------------------------------- reading


def test_the_release_reads_with_folder_names_and_normalised_question_types(
    demon_root: Path,
) -> None:
    tasks = read_demon_root(demon_root)
    assert [t.name for t in tasks] == ["ALFRED", "Fashion200K", "MMCoQA", "MultiModalQA"]
    by_name = {t.name: t for t in tasks}
    mmqa = by_name["MultiModalQA"]
    assert mmqa.dataset == "MMQA" and mmqa.split == "core"  # folder name != metadata.dataset
    assert mmqa.instructions == tuple(MMQA["task_instruction"])
    assert mmqa.question_type == "multi-choice"
    assert by_name["ALFRED"].question_type == "open-ended"  # "" in the release
    first = mmqa.samples[0]
    images = demon_root / "MultiModalQA" / "core" / "images"
    assert first.sample_id == 0 and first.instruction_id == 1
    assert first.images == (images / "0.png", images / "1.jpg")
    assert first.image_names == ("0.png", "1.jpg")
    assert first.choices == ("soccer", "baseball") and first.response == "baseball"
    assert by_name["MMCoQA"].samples[0].choices is None
    assert mmqa.sample(1).context.endswith("Gøtu team?")


def test_an_integer_response_reads_as_text_and_keeps_its_type(demon_root: Path) -> None:
    (sample,) = read_demon_task(demon_root / "Fashion200K").samples
    assert sample.response == "2" and sample.response_raw == 2
    assert sample.choices == ("0", "1", "2")


def test_a_repeated_image_path_is_two_images_of_one_file(demon_root: Path) -> None:
    (sample,) = read_demon_task(demon_root / "MMCoQA").samples
    images = demon_root / "MMCoQA" / "core" / "images"
    assert sample.images == (images / "2.png", images / "2.png", images / "3.jpg")


def test_requested_tasks_come_in_order_and_a_missing_one_lists_those_found(
    demon_root: Path,
) -> None:
    tasks = read_demon_root(demon_root, tasks=["MMCoQA", "ALFRED"])
    assert [t.name for t in tasks] == ["MMCoQA", "ALFRED"]
    with pytest.raises(DemonFormatError) as error:
        read_demon_root(demon_root, tasks=["mmcoqa"])
    message = str(error.value)
    assert str(demon_root) in message and "'mmcoqa'" in message
    assert "did you mean 'MMCoQA'" in message
    assert "['ALFRED', 'Fashion200K', 'MMCoQA', 'MultiModalQA']" in message
    with pytest.raises(DemonFormatError, match="no task folders"):
        read_demon_root(demon_root / "nothing-here")


def test_num_sample_unlike_the_data_warns_naming_the_file(demon_root: Path) -> None:
    path = write_release_task(demon_root, "MMCoQA", {**MMCOQA, "num_sample": 7}, MMCOQA_DATA)
    with pytest.warns(DemonFormatWarning, match=r"core\.json: metadata\.num_sample is 7"):
        read_demon_task(path)


# ----------------------------------------------------------------------------- errors


def test_a_placeholder_with_no_image_is_read_as_the_reference_reads_it(demon_root: Path) -> None:
    # Issue 22: was refused; the reference keeps it as text (drum.demon.data_report lists it).
    def edit(data: list[dict[str, Any]]) -> None:
        data[1]["task_instance"]["context"] = "{image#1}{image#3}Question: which?"
        data[0]["task_instance"]["choice_list"][1] = "Image B: {table#0}"

    path = _broken(demon_root, edit)
    task = read_demon_task(path.parent.parent)
    assert task.samples[1].context == "{image#1}{image#3}Question: which?"
    assert task.samples[0].choices == ("soccer", "Image B: {table#0}")


def test_a_missing_image_file_names_the_image(demon_root: Path) -> None:
    images = demon_root / "MultiModalQA" / "core" / "images"
    (images / "3.png").unlink()
    with pytest.raises(DemonFormatError) as error:
        read_demon_task(demon_root / "MultiModalQA")
    assert error.value.sample_id == 1
    assert f"image not found: {images / '3.png'}" in str(error.value)
    assert "core.json" in str(error.value)
    # Without the check the task still reads (the images are looked at later).
    assert len(read_demon_task(demon_root / "MultiModalQA", verify_images=False).samples) == 2


def test_an_instruction_id_out_of_range_names_the_range(demon_root: Path) -> None:
    def edit(data: list[dict[str, Any]]) -> None:
        data[0]["task_instruction_id"] = 2

    path = _broken(demon_root, edit)
    with pytest.raises(DemonFormatError) as error:
        read_demon_task(path.parent.parent)
    assert str(error.value) == (
        f"{path}: sample_id 0: task_instruction_id 2 is out of range: expected 0 to 1 "
        "(metadata.task_instruction has 2)"
    )


def test_a_response_not_among_its_choices_is_read(demon_root: Path) -> None:
    # Issue 22: was refused; the reference reads it (drum.demon.data_report lists it).
    def edit(data: list[dict[str, Any]]) -> None:
        data[0]["response"] = "cricket"
        data[1]["task_instance"]["choice_list"] = []

    path = _broken(demon_root, edit)
    task = read_demon_task(path.parent.parent)
    assert task.samples[0].response == "cricket" and task.samples[1].choices == ()


def test_malformed_json_names_the_file_line_and_column(demon_root: Path) -> None:
    path = demon_root / "ALFRED" / "core" / "core.json"
    path.write_text('{"metadata": {"dataset": "ALFRED",\n  "split": core}}')
    with pytest.raises(DemonFormatError) as error:
        read_demon_task(path.parent.parent)
    assert str(error.value).startswith(f"{path}: malformed JSON at line 2 column 12: ")


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda d: d[0].pop("response"), r"data\[0\] is missing \['response'\]"),
        (lambda d: d[1]["task_instance"].pop("images_path"), r"sample_id 1: data\[1\]\.task_"),
        (lambda d: d[1].update(sample_id=0), "sample_id 0: sample_id appears twice"),
        (lambda d: d[0].update(response=2.5), "sample_id 0: response must be a string"),
        (lambda d: d[0]["task_instance"].update(images_path=["../x.png"]), "relative file"),
        (lambda d: d[0]["task_instance"].update(choice_list=[1, 2]), "a list of strings"),
    ],
)
def test_a_broken_item_names_the_item_and_what_was_expected(
    demon_root: Path, edit: Any, expected: str
) -> None:
    path = _broken(demon_root, edit)
    with pytest.raises(DemonFormatError, match=expected) as error:
        read_demon_task(path.parent.parent, verify_images=False)
    assert str(error.value).startswith(str(path))


def test_an_unknown_question_type_is_refused(demon_root: Path) -> None:
    path = _broken(demon_root, lambda d: None, {**MMQA, "question_type": "yes-no"})
    with pytest.raises(DemonFormatError, match="question_type must be one of"):
        read_demon_task(path.parent.parent)


# ----------------------------------------------------------------------------- writing


@pytest.mark.parametrize("folder", sorted(RELEASE))
def test_a_written_task_is_the_release_file_and_reads_back_equal(
    demon_root: Path, tmp_path: Path, folder: str
) -> None:
    task = read_demon_task(demon_root / folder)
    out = write_demon_task(task, tmp_path / "copy")
    assert out == tmp_path / "copy" / folder
    original, written = _core(demon_root / folder), _core(out)
    if folder == "ALFRED":
        original["metadata"]["question_type"] = "open-ended"  # the one thing normalised
    assert written == original
    assert json.dumps(written, indent=4, ensure_ascii=False) + "\n" == (
        out / "core" / "core.json"
    ).read_text(encoding="utf-8")
    assert list(written["metadata"]) == [
        "dataset", "split", "num_sample", "task_instruction", "question_type"
    ]  # fmt: skip
    assert list(written["data"][0]) == [
        "sample_id", "task_instruction_id", "task_instance", "response"
    ]  # fmt: skip
    back = read_demon_task(out)
    assert back == _relocated(task, out / "core" / "images")
    for old, new in zip(task.samples, back.samples, strict=True):
        for a, b in zip(old.images, new.images, strict=True):
            assert a.read_bytes() == b.read_bytes()


def test_the_integer_response_is_written_as_an_integer(demon_root: Path, tmp_path: Path) -> None:
    out = write_demon_task(read_demon_task(demon_root / "Fashion200K"), tmp_path)
    assert _core(out)["data"][0]["response"] == 2


def test_a_repeated_image_is_copied_once(demon_root: Path, tmp_path: Path) -> None:
    out = write_demon_task(read_demon_task(demon_root / "MMCoQA"), tmp_path)
    assert sorted(p.name for p in (out / "core" / "images").iterdir()) == ["2.png", "3.jpg"]


def test_a_task_built_in_memory_writes_in_the_release_layout(tmp_path: Path) -> None:
    from tests.demon.conftest import write_image

    write_image(tmp_path / "src" / "a" / "cat.png", 1)
    write_image(tmp_path / "src" / "b" / "dog.png", 2)
    sample = DemonSample(
        sample_id="q1",
        instruction_id=0,
        context="{image#1} and {image#2}: which is the cat?",
        images=(tmp_path / "src" / "a" / "cat.png", tmp_path / "src" / "b" / "dog.png"),
        choices=("Image A", "Image B"),
        response="Image A",
    )
    task = DemonTask("MyTask", "my-dataset", "test", ("Look. ",), "multi-choice", (sample,))
    out = write_demon_task(task, tmp_path / "release")
    assert _core(out)["data"][0]["task_instance"]["images_path"] == ["cat.png", "dog.png"]
    assert read_demon_task(out) == _relocated(task, out / "core" / "images")


def test_two_files_under_one_name_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    from tests.demon.conftest import write_image

    write_image(tmp_path / "a" / "0.png", 1)
    write_image(tmp_path / "b" / "0.png", 2)
    samples = tuple(
        DemonSample(i, 0, "{image#1}", (tmp_path / d / "0.png",), None, "x")
        for i, d in enumerate("ab")
    )
    task = DemonTask("T", "T", "core", ("Say. ",), "open-ended", samples)
    with pytest.raises(DemonFormatError, match="image name '0.png' stands for two files"):
        write_demon_task(task, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_rewriting_a_task_in_place_keeps_its_images(demon_root: Path) -> None:
    task = read_demon_task(demon_root / "MultiModalQA")
    before = _core(demon_root / "MultiModalQA")
    write_demon_task(task, demon_root)
    assert _core(demon_root / "MultiModalQA") == before
    assert read_demon_task(demon_root / "MultiModalQA") == task


def test_sample_and_task_validate_what_they_hold() -> None:
    with pytest.raises(ValueError, match="response_raw must be"):
        DemonSample(0, 0, "", (), None, "4", response_raw=5)
    with pytest.raises(ValueError, match="relative file names"):
        DemonSample(0, 0, "", (Path("/x/a.png"),), None, "4", image_names=("/x/a.png",))
    sample = DemonSample(0, 3, "text", (), None, "a")
    with pytest.raises(ValueError, match="task_instruction_id 3 is out of range"):
        DemonTask("T", "T", "core", ("one",), "open-ended", (sample,))
    with pytest.raises(ValueError, match="question_type must be one of"):
        DemonTask("T", "T", "core", ("one",), "", ())


# ----------------------------------------------------------------------------- predictions


def test_predictions_are_written_in_the_reference_format_and_read_back(
    demon_root: Path, tmp_path: Path
) -> None:
    task = read_demon_task(demon_root / "Fashion200K")
    path = write_predictions(tmp_path / "results", task, {0: "The answer is 2"})
    assert path == tmp_path / "results" / "Fashion200K" / "pred.json"
    assert path == predictions_path(tmp_path / "results", task)
    records = json.loads(path.read_text(encoding="utf-8"))
    # i4_cheetah_llama2.py's fields, in its order; gt_response is str(response).
    assert records == [{"sample_id": 0, "pred_response": "The answer is 2", "gt_response": "2"}]
    assert list(records[0]) == ["sample_id", "pred_response", "gt_response"]
    assert read_predictions(tmp_path / "results", task) == {0: "The answer is 2"}
    assert read_predictions(tmp_path / "results", "Fashion200K") == {0: "The answer is 2"}


def test_a_prediction_file_written_by_the_reference_script_reads(
    demon_root: Path, tmp_path: Path
) -> None:
    task = read_demon_task(demon_root / "MultiModalQA")
    # What i4_cheetah_llama2.py leaves: json.dump(indent=4, ensure_ascii=False), grouped by the
    # number of images, so not in core.json's order.
    records = [
        {"sample_id": 1, "pred_response": "Image B: Gøtu", "gt_response": "Image B"},
        {"sample_id": 0, "pred_response": "baseball", "gt_response": "baseball"},
    ]
    path = tmp_path / "cheetah" / "MultiModalQA" / "pred.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(records, indent=4, ensure_ascii=False), encoding="utf8")
    assert read_predictions(tmp_path / "cheetah", task) == {1: "Image B: Gøtu", 0: "baseball"}


def test_our_prediction_file_is_keyed_as_the_reference_evaluate_keys_it(
    demon_root: Path, tmp_path: Path
) -> None:
    task = read_demon_task(demon_root / "MultiModalQA")
    path = write_predictions(tmp_path, task, {0: "baseball", 1: "Image A"})
    preds = json.load(open(path))
    # evaluate.py indexes the predictions by their sample_id and looks each core.json sample
    # up as int(sample_id), then reads pred_response and gt_response.
    by_id = {p["sample_id"]: p for p in preds}
    assert len(preds) == len(_core(demon_root / "MultiModalQA")["data"])
    for sample in _core(demon_root / "MultiModalQA")["data"]:
        entry = by_id[int(sample["sample_id"])]
        assert isinstance(entry["pred_response"], str)
        assert entry["gt_response"] == str(sample["response"])


def test_string_sample_ids_in_a_file_match_the_tasks_integers(
    demon_root: Path, tmp_path: Path
) -> None:
    task = read_demon_task(demon_root / "MMCoQA")
    path = predictions_path(tmp_path, task)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps([{"sample_id": "2", "pred_response": "x"}]))
    assert read_predictions(tmp_path, task) == {2: "x"}
    assert read_predictions(tmp_path, "MMCoQA") == {"2": "x"}


def test_appending_batches_resumes_and_refuses_a_second_different_answer(
    demon_root: Path, tmp_path: Path
) -> None:
    task = read_demon_task(demon_root / "MultiModalQA")
    assert append_predictions(tmp_path, task, {1: "Image B"}) == {1: "Image B"}
    assert append_predictions(tmp_path, task, {0: "soccer"}) == {1: "Image B", 0: "soccer"}
    path = predictions_path(tmp_path, task)
    assert [r["sample_id"] for r in json.loads(path.read_text())] == [0, 1]  # task order
    assert append_predictions(tmp_path, task, {0: "soccer"}) == {0: "soccer", 1: "Image B"}
    before = path.read_bytes()
    with pytest.raises(DemonFormatError, match=r"sample_ids \[0\] already hold a different"):
        append_predictions(tmp_path, task, {0: "baseball"})
    with pytest.raises(DemonFormatError, match=r"not in task 'MultiModalQA': \[7\]"):
        append_predictions(tmp_path, task, {7: "x"})
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["pred.json"]  # no temporary left


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('[{"sample_id": 0, "pred_response": "a"', "malformed JSON at line 1 column 39"),
        ('{"sample_id": 0}', "expected a JSON list of predictions, got dict"),
        ('[{"sample_id": 0}]', r"prediction \[0\] is missing \['pred_response'\]"),
        ('[{"sample_id": 0, "pred_response": 3}]', "sample_id 0: pred_response must be a str"),
        ('[{"sample_id": 9, "pred_response": "a"}]', "sample_id 9: no such sample in task"),
        (
            '[{"sample_id": 0, "pred_response": "a", "gt_response": "football"}]',
            "sample_id 0: gt_response 'football' differs from core.json's response 'baseball'",
        ),
        (
            '[{"sample_id": 0, "pred_response": "a"}, {"sample_id": "0", "pred_response": "b"}]',
            "sample_id 0: predicted twice",
        ),
    ],
)
def test_a_broken_prediction_file_names_the_file_and_the_sample(
    demon_root: Path, tmp_path: Path, content: str, expected: str
) -> None:
    task = read_demon_task(demon_root / "MultiModalQA")
    path = predictions_path(tmp_path, task)
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(DemonFormatError, match=expected) as error:
        read_predictions(tmp_path, task)
    assert str(error.value).startswith(f"{path}: ")


def test_a_missing_prediction_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(DemonFormatError, match=r"MMCoQA/pred\.json: file not found"):
        read_predictions(tmp_path, "MMCoQA")


def test_a_task_is_named_by_its_folder_as_given_not_by_a_link_target(demon_root: Path) -> None:
    # The reference scripts take the folder name as --dataset (i4_scripts.sh says "nuscenes").
    (demon_root / "mmcoqa-link").symlink_to(demon_root / "MMCoQA", target_is_directory=True)
    assert read_demon_task(demon_root / "mmcoqa-link").name == "mmcoqa-link"
    assert read_demon_task(demon_root / "MMCoQA" / ".." / "MMCoQA").name == "MMCoQA"

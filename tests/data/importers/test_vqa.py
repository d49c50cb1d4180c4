"""VQAv2 / OK-VQA / VizWiz importers: what comes out of the official layouts, and what a
malformed input gives (an error naming file and record, or a reported skip)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drum.data.importers import import_dataset
from drum.data.importers.base import REPORT_NAME
from drum.data.importers.vqa import UNANSWERED, VizWizOptions, VizWizSource, VQAOptions, VQASource
from drum.data.jsonl import DataError, validate_dataset
from drum.metrics.vqa import vqa_accuracy
from tests.data.importers.fixtures import (
    coco_name,
    vqa_answers,
    write_json,
    write_vizwiz,
    write_vqa,
)


def _options(files: dict[str, Path], split: str = "queries", **kwargs: object) -> VQAOptions:
    source = VQASource(split, files["questions"], files["annotations"], files["images"])
    return VQAOptions(sources=(source,), **kwargs)  # type: ignore[arg-type]


def test_vqav2_keeps_all_ten_answers_consensus_first(tmp_path: Path) -> None:
    files = write_vqa(tmp_path / "raw")
    out = tmp_path / "out"
    report = import_dataset("vqav2", _options(files), out)
    assert report.written == {"queries": 4}
    examples = {e.id: e for e in validate_dataset(out / "queries.jsonl")}
    assert set(examples) == {"11", "12", "21", "31"}
    count = examples["11"]
    assert count.task == "vqa" and count.text == "How many dogs?"
    assert len(count.answers) == 10
    assert sorted(count.answers) == sorted(["two"] * 3 + ["2"] * 7)
    assert count.answer == "2"  # multiple_choice_answer moved first, the multiset unchanged
    assert examples["31"].answer == "yes" and examples["31"].answers.count("no") == 4
    assert count.meta == {
        "source": "vqav2",
        "question_id": 11,
        "image_id": 1,
        "question_type": "how many",
        "answer_type": "number",
        "multiple_choice_answer": "2",
    }
    assert count.image == (files["images"] / coco_name("val2014", 1)).resolve()
    # Paths are relative to the output directory, images not copied.
    line = json.loads((out / "queries.jsonl").read_text().splitlines()[0])
    assert line["images"] == [f"../raw/val2014/{coco_name('val2014', 1)}"]
    assert not (out / "images").exists()
    # The official metric, on the imported answers.
    assert vqa_accuracy("WHITE", examples["12"].answers) == 0.0
    flag = examples["21"].answers
    assert vqa_accuracy("red, white, and blue?", flag) == 1.0
    assert vqa_accuracy("Two", count.answers) == 1.0  # refs disagree: normalised
    written = json.loads((out / REPORT_NAME).read_text())
    assert written["format"] == "vqav2" and written["written"] == {"queries": 4}
    assert written["skipped"] == {"queries": {}}


def test_okvqa_and_copy_images(tmp_path: Path) -> None:
    files = write_vqa(tmp_path / "raw", subtype="train2014")
    out = tmp_path / "out"
    report = import_dataset("okvqa", _options(files, split="pool", copy_images=True), out)
    assert report.format == "okvqa" and report.written == {"pool": 4}
    examples = validate_dataset(out / "pool.jsonl")
    assert {e.meta["source"] for e in examples} == {"okvqa"}
    copied = out / "images" / "train2014" / coco_name("train2014", 1)
    assert copied.is_file()
    assert any(e.image == copied.resolve() for e in examples)
    line = json.loads((out / "pool.jsonl").read_text().splitlines()[0])
    assert line["images"][0].startswith("images/train2014/")


def test_skips_are_counted_and_listed(tmp_path: Path) -> None:
    files = write_vqa(tmp_path / "raw")
    questions = json.loads(files["questions"].read_text())
    questions["questions"] += [
        {"image_id": 9, "question": "Where is the image?", "question_id": 91},  # no image file
        {"image_id": 1, "question": "An unanswered one?", "question_id": 92},  # no annotation
    ]
    write_json(files["questions"], questions)
    annotations = json.loads(files["annotations"].read_text())
    annotations["annotations"] += [
        {"question_id": 91, "image_id": 9, "answers": vqa_answers(*["x"] * 10)},
        {"question_id": 999, "image_id": 1, "answers": vqa_answers(*["x"] * 10)},  # unknown
    ]
    write_json(files["annotations"], annotations)
    out = tmp_path / "out"
    report = import_dataset("vqav2", _options(files), out)
    # The question without an annotation is a query without answers: counted, not skipped.
    assert report.written == {"queries": 5} and report.unanswered == {"queries": 1}
    assert report.skipped["queries"] == {
        "annotation for a question_id not in the questions file": 1,
        "image file not found": 1,
    }
    samples = report.samples["queries"]
    assert samples["annotation for a question_id not in the questions file"] == [
        f"{files['annotations']} annotations[5]"
    ]
    assert coco_name("val2014", 9) in samples["image file not found"][0]
    summary = report.summary()
    assert "skipped 1: image file not found" in summary and "queries: 5 examples" in summary
    assert "unanswered 1: no answers" in summary
    on_disk = json.loads((out / REPORT_NAME).read_text())
    assert on_disk["unanswered"] == {"queries": 1} and UNANSWERED not in on_disk["skipped"]
    examples = {e.id: e for e in validate_dataset(out / "queries.jsonl")}
    unanswered = examples["92"]
    assert unanswered.answers == () and not unanswered.has_answers
    assert unanswered.text == "An unanswered one?"
    assert unanswered.meta == {"source": "vqav2", "question_id": 92, "image_id": 1}
    assert all(e.has_answers for key, e in examples.items() if key != "92")


def test_an_annotation_with_no_answers_is_an_answerless_query(tmp_path: Path) -> None:
    files = write_vqa(tmp_path / "raw")
    annotations = json.loads(files["annotations"].read_text())
    annotations["annotations"][0]["answers"] = []
    write_json(files["annotations"], annotations)
    report = import_dataset("vqav2", _options(files), tmp_path / "out")
    assert report.written == {"queries": 4} and report.unanswered == {"queries": 1}
    examples = {e.id: e for e in validate_dataset(tmp_path / "out" / "queries.jsonl")}
    assert examples["11"].answers == () and examples["11"].meta["question_type"] == "how many"


@pytest.mark.parametrize("annotations", ["empty", "none"])
@pytest.mark.parametrize("format_name", ["vqav2", "okvqa"])
def test_a_test_split_without_annotations_imports_as_answerless_queries(
    tmp_path: Path, format_name: str, annotations: str
) -> None:
    files = write_vqa(tmp_path / "raw")
    write_json(files["annotations"], {"annotations": []})
    source = VQASource(
        "test",
        files["questions"],
        files["annotations"] if annotations == "empty" else None,
        files["images"],
    )
    out = tmp_path / "out"
    report = import_dataset(format_name, VQAOptions(sources=(source,)), out)
    assert report.written == {"test": 4} and report.unanswered == {"test": 4}
    assert report.skipped == {"test": {}}
    examples = validate_dataset(out / "test.jsonl")
    assert len(examples) == 4 and not any(e.has_answers for e in examples)
    assert {e.meta["source"] for e in examples} == {format_name}
    lines = [json.loads(line) for line in (out / "test.jsonl").read_text().splitlines()]
    assert all(line["answers"] == [] for line in lines)
    with pytest.raises(DataError, match=r"test\.jsonl:1: example '\d+' has no answers"):
        validate_dataset(out / "test.jsonl", require_answers=True)  # not a pool


def test_an_import_of_only_missing_images_is_still_an_error(tmp_path: Path) -> None:
    files = write_vqa(tmp_path / "raw")
    for image in files["images"].iterdir():
        image.unlink()
    with pytest.raises(DataError, match="split 'queries': no usable example.*image file not"):
        import_dataset("vqav2", _options(files), tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing half-written


@pytest.mark.parametrize(
    ("mutate", "file", "message"),
    [
        (lambda q, a: q["questions"][1].pop("image_id"), "questions",
         r"questions\[1\]: missing field 'image_id' \(a number\)"),
        (lambda q, a: q["questions"][0].update(question_id="11"), "questions",
         r"questions\[0\]: field 'question_id' must be a number, got '11'"),
        (lambda q, a: a["annotations"][2].update(answers="white"), "annotations",
         r"annotations\[2\]: field 'answers' must be a array"),
        (lambda q, a: a["annotations"][0]["answers"].__setitem__(3, {"text": "x"}), "annotations",
         r"annotations\[0\]: answers\[3\] must be an object with a string 'answer'"),
        (lambda q, a: q.pop("questions"), "questions", r"missing field 'questions' \(a array\)"),
    ],
)  # fmt: skip
def test_malformed_records_are_errors_naming_file_and_record(
    tmp_path: Path, mutate: object, file: str, message: str
) -> None:
    files = write_vqa(tmp_path / "raw")
    questions = json.loads(files["questions"].read_text())
    annotations = json.loads(files["annotations"].read_text())
    mutate(questions, annotations)  # type: ignore[operator]
    write_json(files["questions"], questions)
    write_json(files["annotations"], annotations)
    with pytest.raises(DataError, match=message) as raised:
        import_dataset("vqav2", _options(files), tmp_path / "out")
    assert raised.value.path == files[file]


def test_json_syntax_error_and_wrong_top_level_type(tmp_path: Path) -> None:
    files = write_vqa(tmp_path / "raw")
    files["annotations"].write_text('{"annotations": [\n  {"question_id": 11,,}\n]}')
    with pytest.raises(
        DataError, match=r"annotations.json:2: malformed JSON at column 22"
    ) as raised:
        import_dataset("vqav2", _options(files), tmp_path / "out")
    assert "expected a VQA annotations file" in str(raised.value)
    files["annotations"].write_text("[]")
    with pytest.raises(DataError, match="expected a VQA annotations file.*got a JSON array"):
        import_dataset("vqav2", _options(files), tmp_path / "out")


def test_coco_split_from_option_when_the_file_has_none(tmp_path: Path) -> None:
    files = write_vqa(tmp_path / "raw")
    questions = json.loads(files["questions"].read_text())
    del questions["data_subtype"]
    write_json(files["questions"], questions)
    with pytest.raises(DataError, match="no 'data_subtype'.*--coco-split"):
        import_dataset("vqav2", _options(files), tmp_path / "out")
    source = VQASource(
        "queries", files["questions"], files["annotations"], files["images"], "val2014"
    )
    report = import_dataset("vqav2", VQAOptions(sources=(source,)), tmp_path / "out")
    assert report.written == {"queries": 4}


def test_two_splits_and_option_checks(tmp_path: Path) -> None:
    train = write_vqa(tmp_path / "raw", subtype="train2014")
    val = write_vqa(tmp_path / "raw", subtype="val2014")
    options = VQAOptions(
        sources=(
            VQASource("pool", train["questions"], train["annotations"], train["images"]),
            VQASource("queries", val["questions"], val["annotations"], val["images"]),
        )
    )
    report = import_dataset("vqav2", options, tmp_path / "out")
    assert report.written == {"pool": 4, "queries": 4}
    with pytest.raises(ValueError, match="each output split may be given once"):
        VQAOptions(sources=options.sources[:1] * 2)
    with pytest.raises(ValueError, match="split name"):
        VQASource("../x", train["questions"], train["annotations"], train["images"])
    with pytest.raises(TypeError, match="takes VQAOptions"):
        import_dataset("vqav2", object(), tmp_path / "out")


def test_out_directory_guards(tmp_path: Path) -> None:
    files = write_vqa(tmp_path / "raw")
    other = tmp_path / "mine"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="non-empty directory not written by `drum data import`"):
        import_dataset("vqav2", _options(files), other)
    assert (other / "keep.txt").read_text() == "mine"
    with pytest.raises(DataError, match="contains the input"):
        import_dataset("vqav2", _options(files), tmp_path / "raw")
    out = tmp_path / "out"
    import_dataset("vqav2", _options(files), out)
    import_dataset("vqav2", _options(files), out)  # an earlier import is replaced
    assert sorted(p.name for p in out.iterdir()) == [REPORT_NAME, "queries.jsonl"]


def test_vizwiz(tmp_path: Path) -> None:
    files = write_vizwiz(tmp_path / "raw")
    records = json.loads(files["annotations"].read_text())
    records.append({"image": "VizWiz_val_00000009.jpg", "question": "test?"})  # no answers
    write_json(files["annotations"], records)
    options = VizWizOptions(
        sources=(VizWizSource("queries", files["annotations"], files["images"]),)
    )
    report = import_dataset("vizwiz", options, tmp_path / "out")
    assert report.written == {"queries": 2}
    assert report.skipped["queries"] == {UNANSWERED: 1}
    examples = {e.id: e for e in validate_dataset(tmp_path / "out" / "queries.jsonl")}
    soup = examples["VizWiz_val_00000000"]
    assert soup.answer == "soup" and len(soup.answers) == 10
    assert soup.meta == {"source": "vizwiz", "image": "VizWiz_val_00000000.jpg", "answerable": 1,
                         "answer_type": "other"}  # fmt: skip
    records[0]["answers"] = {"answer": "x"}
    write_json(files["annotations"], records)
    with pytest.raises(DataError, match=r"\[0\]: field 'answers' must be an array"):
        import_dataset("vizwiz", options, tmp_path / "out2")
    write_json(files["annotations"], {"annotations": records})
    with pytest.raises(DataError, match="expected a VizWiz annotations file.*got a JSON object"):
        import_dataset("vizwiz", options, tmp_path / "out2")


def test_a_missing_image_folder_or_a_folder_for_a_file(tmp_path: Path) -> None:
    files = write_vqa(tmp_path / "raw")
    options = VQAOptions(sources=(VQASource("queries", files["questions"], files["annotations"],
                                            tmp_path / "nowhere"),))  # fmt: skip
    with pytest.raises(DataError, match="nowhere: not found; expected a directory: the COCO"):
        import_dataset("vqav2", options, tmp_path / "out")
    options = VQAOptions(sources=(VQASource("queries", files["images"], files["annotations"],
                                            files["images"]),))  # fmt: skip
    with pytest.raises(DataError, match="is a directory; expected a file: a VQA questions file"):
        import_dataset("vqav2", options, tmp_path / "out")

"""``drum data import FORMAT``, end to end: import the official layout, then ``drum data check``
the output, one test per format family."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drum.cli.main import app
from drum.data.importers.base import OUTSIDE_IMAGE_ROOT, REPORT_NAME
from drum.data.importers.classification import DIRECTORY_LINK, NOT_UTF8_NAME
from tests.data.importers.fixtures import (
    write_coco_captions,
    write_image_folder,
    write_json,
    write_karpathy,
    write_memes,
    write_photo,
    write_vizwiz,
    write_vqa,
)

runner = CliRunner()


def _ok(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output


def _check(out: Path, *splits: str) -> None:
    assert sorted(p.name for p in out.glob("*.jsonl")) == sorted(f"{s}.jsonl" for s in splits)
    for split in splits:
        assert "all valid" in " ".join(_ok(["data", "check", str(out / f"{split}.jsonl")]).split())
    assert json.loads((out / REPORT_NAME).read_text())["written"].keys() == set(splits)


def test_vqa_family(tmp_path: Path) -> None:
    train = write_vqa(tmp_path / "raw", "train2014")
    val = write_vqa(tmp_path / "raw", "val2014")
    out = tmp_path / "vqav2"
    args = ["data", "import", "vqav2", "--out", str(out)]
    for files in (train, val):
        args += ["--questions", str(files["questions"]), "--annotations", str(files["annotations"])]
        args += ["--images", str(files["images"])]
    output = _ok(args)
    assert "pool: 4 examples" in output and "queries: 4 examples" in output
    _check(out, "pool", "queries")
    # okvqa: the same layout; one source, named with --split.
    out = tmp_path / "okvqa"
    _ok(["data", "import", "okvqa", "--questions", str(val["questions"]), "--annotations",
         str(val["annotations"]), "--images", str(val["images"]), "--split", "val",
         "--out", str(out)])  # fmt: skip
    _check(out, "val")
    vizwiz = write_vizwiz(tmp_path / "vizwiz_raw")
    out = tmp_path / "vizwiz"
    _ok(["data", "import", "vizwiz", "--annotations", str(vizwiz["annotations"]), "--images",
         str(vizwiz["images"]), "--split", "queries", "--out", str(out)])  # fmt: skip
    _check(out, "queries")


def test_vqa_test_split_without_annotations_imports_as_answerless_queries(
    tmp_path: Path,
) -> None:
    train = write_vqa(tmp_path / "raw", "train2014")
    test = write_vqa(tmp_path / "raw", "test2015")
    out = tmp_path / "vqav2"
    output = _ok(["data", "import", "vqav2", "--out", str(out),
                  "--questions", str(train["questions"]), "--annotations",
                  str(train["annotations"]), "--images", str(train["images"]),
                  "--questions", str(test["questions"]), "--annotations", "none",
                  "--images", str(test["images"]),
                  "--split", "pool", "--split", "test"])  # fmt: skip
    output = " ".join(output.split())
    assert "pool: 4 examples" in output and "test: 4 examples" in output
    assert "unanswered 4: no answers" in output and "skipped" not in output
    report = json.loads((out / REPORT_NAME).read_text())
    assert report["unanswered"] == {"pool": 0, "test": 4}
    checked = " ".join(_ok(["data", "check", str(out / "test.jsonl")]).split())
    assert "4 examples, all valid; 4 without answers" in checked
    result = runner.invoke(app, ["data", "check", "--pool", str(out / "test.jsonl")])
    assert result.exit_code == 2 and "test.jsonl:1: example" in result.output
    assert "without answers" not in _ok(["data", "check", "--pool", str(out / "pool.jsonl")])


def test_vqa_bad_input_exits_2_naming_the_problem(tmp_path: Path) -> None:
    files = write_vqa(tmp_path / "raw")
    base = ["data", "import", "vqav2", "--out", str(tmp_path / "out")]
    result = runner.invoke(
        app, [*base, "--questions", str(files["questions"]), "--images", str(files["images"]),
              "--annotations", str(files["annotations"]), "--annotations",
              str(files["annotations"])],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "same number of times: --questions x1, --annotations x2, --images x1" in result.output
    files["questions"].write_text('{"questions": [}')
    result = runner.invoke(
        app, [*base, "--questions", str(files["questions"]), "--annotations",
              str(files["annotations"]), "--images", str(files["images"])],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "questions.json:1: malformed JSON at column 16" in result.output
    assert not (tmp_path / "out").exists()


def test_caption_family(tmp_path: Path) -> None:
    files = write_coco_captions(tmp_path / "raw")
    out = tmp_path / "coco"
    _ok(["data", "import", "coco-captions", "--captions", str(files["captions"]), "--images",
         str(files["images"]), "--split", "queries", "--out", str(out)])  # fmt: skip
    _check(out, "queries")
    karpathy = write_karpathy(tmp_path / "karpathy_raw")
    out = tmp_path / "karpathy"
    output = _ok(["data", "import", "coco-captions", "--karpathy", str(karpathy["file"]),
                  "--images", str(karpathy["images"]), "--out", str(out)])  # fmt: skip
    assert "(not imported): skipped 1: Karpathy split 'val'" in output
    _check(out, "pool", "queries")
    out = tmp_path / "karpathy_val"
    _ok(["data", "import", "coco-captions", "--karpathy", str(karpathy["file"]), "--images",
         str(karpathy["images"]), "--karpathy-split", "val=queries,train=pool", "--out",
         str(out)])  # fmt: skip
    _check(out, "pool", "queries")
    result = runner.invoke(app, ["data", "import", "coco-captions", "--karpathy",
                                 str(karpathy["file"]), "--images", str(karpathy["images"]),
                                 "--karpathy-split", "val", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 2 and "expected SOURCE=SPLIT pairs" in result.output


def test_classification_family(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "folders" / "train")
    out = tmp_path / "folder_out"
    output = _ok(["data", "import", "image-folder", "--root", str(root), "--out", str(out)])
    assert "pool: 3 examples" in output and "skipped 1: not an image file extension" in output
    _check(out, "pool")
    train = write_memes(tmp_path / "memes", "train.jsonl", (0, 1))
    dev = write_memes(tmp_path / "memes", "dev_seen.jsonl", (1, 0))
    out = tmp_path / "memes_out"
    _ok(["data", "import", "hateful-memes", "--jsonl", str(train), "--jsonl", str(dev),
         "--labels", "benign,hateful", "--out", str(out), "--copy-images"])  # fmt: skip
    _check(out, "pool", "queries")
    line = json.loads((out / "pool.jsonl").read_text().splitlines()[0])
    assert line["answers"] == ["benign"] and line["images"] == ["images/img/42950.png"]


def test_hf_family(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    from tests.data.importers.test_hf import _png

    data = datasets.Dataset.from_dict(
        {
            "image": [{"bytes": _png(i), "path": None} for i in range(3)],
            "caption": ["one.", "two.", "three."],
        },
        features=datasets.Features(
            {"image": datasets.Image(), "caption": datasets.Value("string")}
        ),
    )
    source = tmp_path / "hf_raw" / "validation-00000-of-00001.parquet"
    source.parent.mkdir()
    data.to_parquet(str(source))
    out = tmp_path / "hf_out"
    _ok(["data", "import", "hf", str(source), "--task", "caption", "--answers-column", "caption",
         "--split-map", "validation=queries", "--out", str(out)])  # fmt: skip
    _check(out, "queries")
    assert len(list((out / "images" / "validation").iterdir())) == 3
    result = runner.invoke(app, ["data", "import", "hf", str(source), "--task", "nope",
                                 "--out", str(out)])  # fmt: skip
    assert result.exit_code == 2 and "task must be one of" in result.output


def test_imported_data_runs_through_drum_eval_unchanged(
    tmp_path: Path, tiny_llava_dir: Path
) -> None:
    train = write_vqa(tmp_path / "raw", "train2014")
    val = write_vqa(tmp_path / "raw", "val2014")
    out = tmp_path / "vqav2"
    args = ["data", "import", "vqav2", "--out", str(out)]
    for files in (train, val):
        args += ["--questions", str(files["questions"]), "--annotations", str(files["annotations"])]
        args += ["--images", str(files["images"])]
    _ok(args)
    task_file = write_json(
        tmp_path / "task.json",
        {"name": "vqav2", "task_type": "vqa", "pool": "vqav2/pool.jsonl",
         "queries": "vqav2/queries.jsonl"},
    )  # fmt: skip
    _ok(["eval", "--task-file", str(task_file), "--model", str(tiny_llava_dir), "--strategy",
         "random", "--shots", "0,1", "--seeds", "0", "--out", str(tmp_path / "eval")])  # fmt: skip
    results = json.loads((tmp_path / "eval" / "icl_results.json").read_text())
    assert {row["task"] for row in results["rows"]} == {"vqav2"}


def test_image_folder_with_a_link_loop_and_a_name_not_utf8_exits_0_and_says_so(
    tmp_path: Path,
) -> None:
    root = write_image_folder(tmp_path / "train")
    (root / "cat" / "loop").symlink_to(root)
    write_photo(Path(os.fsdecode(os.fsencode(root / "dog") + b"/caf\xe9.jpg")), 3)
    out = tmp_path / "out"
    output = _ok(["data", "import", "image-folder", "--root", str(root), "--out", str(out),
                  "--copy-images"])  # fmt: skip
    assert "pool: 3 examples" in output
    assert f"skipped 1: {DIRECTORY_LINK}" in output and f"skipped 1: {NOT_UTF8_NAME}" in output
    _check(out, "pool")


def test_copy_images_never_writes_outside_out(tmp_path: Path) -> None:
    files = write_vizwiz(tmp_path / "s1" / "s2" / "s3")
    records = json.loads(files["annotations"].read_text())
    records.append(dict(records[1], image="../../../escape.jpg"))
    write_json(files["annotations"], records)
    write_photo(tmp_path / "s1" / "escape.jpg", 3)
    out = tmp_path / "o1" / "o2" / "o3" / "out"
    before = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    annotations, images = str(files["annotations"]), str(files["images"])
    output = _ok(["data", "import", "vizwiz", "--annotations", annotations, "--images", images,
                  "--out", str(out), "--copy-images"])  # fmt: skip
    assert f"skipped 1: {OUTSIDE_IMAGE_ROOT}" in output
    after = sorted(p for p in tmp_path.rglob("*") if p.is_file() and out not in p.parents)
    assert after == before  # every file the import wrote is inside --out

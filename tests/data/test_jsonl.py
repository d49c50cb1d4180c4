"""Tests for JSONL dataset reading and writing: every bad input is a DataError naming file:line."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from drum.data.example import Example, NoAnswersError, require_answered
from drum.data.jsonl import (
    DataError,
    DataWarning,
    count_unanswered,
    read_examples,
    require_references,
    validate_dataset,
    verify_image,
    write_examples,
)
from tests.badinput.conftest import broken_deflate_png


def _png(path: Path, colour: tuple[int, int, int] = (200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((16, 16, 3), colour, dtype=np.uint8)).save(path, format="PNG")
    return path


def _record(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": "q1",
        "images": ["images/a.png"],
        "text": "what colour is the square?",
        "answers": ["red", "red", "crimson"],
        "task": "vqa",
        "meta": {"colour": "red"},
    }
    record.update(overrides)
    return record


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A dataset folder with two valid images."""
    _png(tmp_path / "images" / "a.png")
    _png(tmp_path / "images" / "b.png", (30, 30, 200))
    return tmp_path


def _read_error(path: Path, **kwargs: Any) -> DataError:
    with pytest.raises(DataError) as info:
        read_examples(path, **kwargs)
    return info.value


# ------------------------------------------------------------------------------ good input


def test_reads_a_valid_file(root: Path) -> None:
    path = _write_lines(
        root / "data.jsonl",
        [json.dumps(_record()), json.dumps(_record(id="q2", images=["images/b.png"]))],
    )
    examples = read_examples(path)
    assert [e.id for e in examples] == ["q1", "q2"]
    first = examples[0]
    assert first.images == ((root / "images" / "a.png").resolve(),)
    assert first.text == "what colour is the square?"
    assert first.answers == ("red", "red", "crimson")
    assert first.answer == "red"
    assert first.task == "vqa"
    assert first.meta == {"colour": "red"}


def test_blank_lines_are_skipped_and_line_numbers_still_count(root: Path) -> None:
    path = root / "data.jsonl"
    path.write_text(
        "\n" + json.dumps(_record()) + "\n   \n\t\n" + json.dumps(_record(id="q2")) + "\n\n{oops\n",
        encoding="utf-8",
    )
    error = _read_error(path)
    assert error.line == 7
    path.write_text("\n" + json.dumps(_record()) + "\n   \n\n", encoding="utf-8")
    assert [e.id for e in read_examples(path)] == ["q1"]


def test_crlf_line_endings(root: Path) -> None:
    path = root / "data.jsonl"
    path.write_bytes((json.dumps(_record()) + "\r\n\r\n").encode())
    assert [e.id for e in read_examples(path)] == ["q1"]


def test_empty_file_gives_no_examples(root: Path) -> None:
    assert read_examples(_write_lines(root / "empty.jsonl", [])) == []


def test_single_string_answers_and_images_are_accepted(root: Path) -> None:
    path = _write_lines(
        root / "data.jsonl", [json.dumps(_record(answers="red", images="images/a.png"))]
    )
    (example,) = read_examples(path)
    assert example.answers == ("red",)
    assert example.images == ((root / "images" / "a.png").resolve(),)


def test_meta_is_optional(root: Path) -> None:
    record = _record()
    del record["meta"]
    (example,) = read_examples(_write_lines(root / "data.jsonl", [json.dumps(record)]))
    assert example.meta == {}


def test_image_paths_resolve_relative_to_the_jsonl_not_the_cwd(
    root: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    nested = root / "splits" / "deep"
    nested.mkdir(parents=True)
    path = _write_lines(nested / "data.jsonl", [json.dumps(_record(images=["../../images/a.png"]))])
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    (example,) = read_examples(path)
    assert example.image == (root / "images" / "a.png").resolve()
    assert example.image.is_absolute()
    # a relative path to the JSONL itself works from any cwd too
    monkeypatch.chdir(root)
    (example,) = read_examples(Path("splits/deep/data.jsonl"))
    assert example.image == (root / "images" / "a.png").resolve()


def test_absolute_image_paths_are_kept(
    root: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    image = _png(tmp_path_factory.mktemp("other") / "x.png")
    path = _write_lines(root / "data.jsonl", [json.dumps(_record(images=[str(image)]))])
    assert read_examples(path)[0].image == image.resolve()


def test_multiple_images(root: Path) -> None:
    path = _write_lines(
        root / "data.jsonl", [json.dumps(_record(images=["images/a.png", "images/b.png"]))]
    )
    (both,) = read_examples(path)
    assert [p.name for p in both.images] == ["a.png", "b.png"]


def test_a_utf8_bom_at_the_start_of_the_file_is_accepted(root: Path) -> None:
    path = root / "bom.jsonl"
    lines = [json.dumps(_record()), json.dumps(_record(id="q2"))]
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode())
    assert [e.id for e in read_examples(path)] == ["q1", "q2"]


def test_unknown_fields_warn_once_per_file_with_the_first_line(root: Path) -> None:
    path = _write_lines(
        root / "data.jsonl",
        [
            json.dumps(_record()),
            json.dumps(_record(id="q2", answer="red")),
            json.dumps(_record(id="q3", answer="red", image="images/a.png")),
        ],
    )
    with pytest.warns(DataWarning) as record:
        examples = read_examples(path)
    assert len(examples) == 3
    assert len(record) == 1
    message = str(record[0].message)
    assert "data.jsonl:2" in message and "['answer', 'image']" in message


def test_known_fields_do_not_warn(root: Path) -> None:
    import warnings

    path = _write_lines(root / "data.jsonl", [json.dumps(_record())])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_examples(path)


def test_unicode_text_survives(root: Path) -> None:
    path = _write_lines(
        root / "data.jsonl", [json.dumps(_record(text="¿qué color? 色", answers=["rojo"]))]
    )
    assert read_examples(path)[0].text == "¿qué color? 色"


# ------------------------------------------------------------------------------- bad input


def test_missing_dataset_file(tmp_path: Path) -> None:
    error = _read_error(tmp_path / "nope.jsonl")
    assert "nope.jsonl" in str(error) and "not found" in str(error)
    assert error.line is None


@pytest.mark.parametrize(
    "line",
    ['{"id": "q1", "images": [', "not json at all", '{"id": "q1",}', "{'id': 'q1'}"],
)
def test_malformed_json_names_file_and_line(root: Path, line: str) -> None:
    path = _write_lines(root / "broken.jsonl", [json.dumps(_record(id="ok")), line])
    error = _read_error(path)
    assert "broken.jsonl:2" in str(error)
    assert "malformed JSON" in str(error)
    assert error.path == path and error.line == 2
    assert isinstance(error, ValueError)


@pytest.mark.parametrize(
    ("line", "column"),
    [
        ('{"id": "q1",}', 13),
        ('  {"id" "q1"}', 9),
        ('{"text": "¿qué?", oops}', 19),
        ('{"text": "tab\there"}', 14),
    ],
)
def test_malformed_json_reports_the_column_of_the_error(root: Path, line: str, column: int) -> None:
    path = _write_lines(root / "broken.jsonl", [line])
    assert f"at column {column}:" in str(_read_error(path))


def test_malformed_json_after_a_bom_reports_the_real_error_and_column(root: Path) -> None:
    path = root / "broken.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"id": "q1",}\n')
    error = str(_read_error(path))
    assert "broken.jsonl:1" in error and "at column 13:" in error and "BOM" not in error


@pytest.mark.parametrize("line", ["[1, 2, 3]", '"a string"', "42", "null"])
def test_non_object_json(root: Path, line: str) -> None:
    error = _read_error(_write_lines(root / "data.jsonl", [line]))
    assert "data.jsonl:1" in str(error) and "JSON object" in str(error)


@pytest.mark.parametrize("field", ["id", "images", "text", "answers", "task"])
def test_missing_field_is_named(root: Path, field: str) -> None:
    record = _record()
    del record[field]
    error = _read_error(_write_lines(root / "data.jsonl", [json.dumps(record)]))
    assert "data.jsonl:1" in str(error)
    assert "missing" in str(error) and repr([field]) in str(error)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"answers": [1, 2]}, "answers"),
        ({"answers": ["red", None]}, "answers"),
        ({"answers": {"a": "red"}}, "answers"),
        ({"answers": 3}, "answers"),
        ({"answers": [["red"]]}, "answers"),
        ({"images": [1]}, "images"),
        ({"images": None}, "images"),
        ({"task": "segmentation"}, "task"),
        ({"task": "VQA"}, "task"),
        ({"task": ["vqa"]}, "task"),
        ({"meta": []}, "meta"),
        ({"meta": "colour=red"}, "meta"),
        ({"meta": None}, "meta"),
        ({"id": 7}, "id"),
        ({"id": ""}, "id"),
        ({"text": None}, "text"),
        ({"text": ["a", "b"]}, "text"),
    ],
)
def test_wrong_types_name_the_field(root: Path, overrides: dict[str, Any], field: str) -> None:
    path = _write_lines(
        root / "data.jsonl", [json.dumps(_record(id="q0")), "", json.dumps(_record(**overrides))]
    )
    error = _read_error(path)
    assert "data.jsonl:3" in str(error)
    assert repr(field) in str(error)


def test_unknown_task_lists_the_known_ones(root: Path) -> None:
    error = _read_error(_write_lines(root / "data.jsonl", [json.dumps(_record(task="ocr"))]))
    for task in ("vqa", "caption", "classification"):
        assert task in str(error)


def test_missing_image_file(root: Path) -> None:
    path = _write_lines(
        root / "data.jsonl",
        [
            json.dumps(_record()),
            json.dumps(_record(id="q2", images=["images/a.png", "images/zz.png"])),
        ],
    )
    error = _read_error(path)
    assert "data.jsonl:2" in str(error)
    assert "image not found" in str(error) and "zz.png" in str(error)
    # without verification the reader does not touch the images at all
    assert len(read_examples(path, verify_images=False)) == 2


def test_image_path_that_is_a_directory(root: Path) -> None:
    path = _write_lines(root / "data.jsonl", [json.dumps(_record(images=["images"]))])
    assert "image not found" in str(_read_error(path))


def _png_bytes() -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(
        buffer, format="PNG"
    )
    return buffer.getvalue()


@pytest.mark.parametrize(
    "make_bytes",
    [
        pytest.param(lambda good: b"this is not a png\x00\xff" * 8, id="garbage"),
        pytest.param(lambda good: b"", id="empty"),
        pytest.param(lambda good: good[:8], id="signature-only"),
        pytest.param(lambda good: good[: len(good) // 2], id="truncated"),
        pytest.param(lambda good: good[:8] + b"\x13" * 64, id="signature-then-garbage"),
        pytest.param(lambda good: good[:40] + bytes([good[40] ^ 0xFF]) + good[41:], id="bad-crc"),
    ],
)
def test_corrupt_image(root: Path, make_bytes: Any) -> None:
    (root / "images" / "bad.png").write_bytes(make_bytes(_png_bytes()))
    path = _write_lines(root / "data.jsonl", [json.dumps(_record(images=["images/bad.png"]))])
    error = _read_error(path)
    assert "data.jsonl:1" in str(error)
    assert "corrupt" in str(error) or "cannot identify" in str(error)
    assert "bad.png" in str(error)


def test_an_image_with_broken_data_and_valid_crc_is_decoded_and_rejected(root: Path) -> None:
    (root / "images" / "bad.png").write_bytes(broken_deflate_png(_png_bytes()))
    with Image.open(root / "images" / "bad.png") as image:
        image.verify()  # the CRCs are fine: only a full decode finds the damage
    path = _write_lines(root / "data.jsonl", [json.dumps(_record(images=["images/bad.png"]))])
    error = str(_read_error(path))
    assert "data.jsonl:1" in error and "bad.png" in error and "corrupt" in error


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"images": []}, "'images' must name at least one image"),
        ({"images": [""]}, "'images' must name at least one image"),
        ({"answers": ""}, "'answers' must hold non-empty answers"),
        ({"answers": ["red", " "]}, "'answers' must hold non-empty answers"),
    ],
)
def test_empty_images_and_answers_are_errors(
    root: Path, overrides: dict[str, Any], expected: str
) -> None:
    path = _write_lines(root / "data.jsonl", [json.dumps(_record(**overrides))])
    error = str(_read_error(path))
    assert "data.jsonl:1" in error and expected in error


def test_validate_dataset_rejects_an_empty_file(root: Path) -> None:
    path = _write_lines(root / "empty.jsonl", ["", "  "])
    with pytest.raises(DataError, match=r"empty\.jsonl: no examples"):
        validate_dataset(path)
    good = _write_lines(root / "good.jsonl", [json.dumps(_record())])
    assert [e.id for e in validate_dataset(good)] == ["q1"]


def test_verify_image_directly(root: Path) -> None:
    verify_image(root / "images" / "a.png", root / "x.jsonl", None)
    (root / "images" / "bad.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"x\.jsonl: unreadable or corrupt image"):
        verify_image(root / "images" / "bad.png", root / "x.jsonl", None)


def test_duplicate_id_names_both_lines(root: Path) -> None:
    path = _write_lines(
        root / "data.jsonl",
        [
            json.dumps(_record(id="q1")),
            json.dumps(_record(id="q2")),
            "",
            json.dumps(_record(id="q1")),
        ],
    )
    error = _read_error(path)
    assert "data.jsonl:4" in str(error)
    assert "duplicate id 'q1'" in str(error) and "line 1" in str(error)


def test_invalid_utf8_is_a_data_error_with_its_line(root: Path) -> None:
    path = root / "data.jsonl"
    path.write_bytes(json.dumps(_record(id="q0")).encode() + b"\n" + b'{"id": "q\xff\xfe1"}\n')
    error = _read_error(path)
    assert "data.jsonl:2" in str(error) and "UTF-8" in str(error)


# -------------------------------------------------------------------------------- writing


def _examples(root: Path) -> list[Example]:
    return [
        Example(
            id="q1",
            images=((root / "images" / "a.png").resolve(),),
            text="what colour is the square?",
            answers=("red", "crimson"),
            task="vqa",
            meta={"colour": "red", "nested": {"n": [1, 2]}},
        ),
        Example(
            id="c1",
            images=((root / "images" / "a.png").resolve(), (root / "images" / "b.png").resolve()),
            text="describe the images.",
            answers=("a red square and a blue square",),
            task="caption",
        ),
        Example(
            id="k1",
            images=((root / "images" / "b.png").resolve(),),
            text="which class?",
            answers=("dax",),
            task="classification",
        ),
    ]


def test_round_trip_with_relative_paths_in_the_file(root: Path) -> None:
    examples = _examples(root)
    path = root / "out" / "data.jsonl"
    assert write_examples(path, examples) == 3
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert records[0]["images"] == [os.path.join("..", "images", "a.png")]
    assert records[1]["images"] == [
        os.path.join("..", "images", "a.png"),
        os.path.join("..", "images", "b.png"),
    ]
    assert all(not os.path.isabs(p) for r in records for p in r["images"])
    assert records[0]["meta"] == {"colour": "red", "nested": {"n": [1, 2]}}
    back = read_examples(path)
    assert back == examples  # meta is not part of equality ...
    assert [e.meta for e in back] == [e.meta for e in examples]  # ... so check it too


def test_round_trip_survives_moving_the_whole_folder(
    root: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = root / "data.jsonl"
    write_examples(path, _examples(root))
    moved = tmp_path_factory.mktemp("moved") / "dataset"
    root.rename(moved)
    back = read_examples(moved / "data.jsonl")
    assert back[0].image == (moved / "images" / "a.png").resolve()


def test_write_accepts_a_generator_and_creates_folders(root: Path) -> None:
    path = root / "a" / "b" / "data.jsonl"
    assert write_examples(path, (e for e in _examples(root))) == 3
    assert len(read_examples(path)) == 3


def test_write_is_readable_by_others(root: Path) -> None:
    # atomic writes go through mkstemp (mode 0o600); the result must get ordinary permissions
    path = root / "data.jsonl"
    write_examples(path, _examples(root))
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    path.chmod(0o640)
    write_examples(path, _examples(root)[:1])
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_write_refuses_duplicate_ids_and_keeps_the_old_file(root: Path) -> None:
    path = root / "data.jsonl"
    write_examples(path, _examples(root))
    before = _snapshot(root)
    duplicate = [*_examples(root), _examples(root)[1]]
    with pytest.raises(DataError, match="duplicate id 'c1'") as info:
        write_examples(path, duplicate)
    assert "data.jsonl" in str(info.value)
    assert _snapshot(root) == before
    assert not [p for p in root.iterdir() if p.name.endswith(".tmp")]


def test_failed_write_midway_keeps_the_old_file_and_leaves_no_temp(root: Path) -> None:
    path = root / "data.jsonl"
    write_examples(path, _examples(root))
    before = _snapshot(root)

    def explode_after_one() -> Iterator[Example]:
        yield _examples(root)[0]
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        write_examples(path, explode_after_one())
    assert _snapshot(root) == before
    assert sorted(p.name for p in root.iterdir()) == ["data.jsonl", "images"]
    assert [e.id for e in read_examples(path)] == ["q1", "c1", "k1"]


def test_failed_first_write_leaves_nothing(root: Path) -> None:
    path = root / "new.jsonl"

    def explode() -> Iterator[Example]:
        yield _examples(root)[0]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_examples(path, explode())
    assert not path.exists()
    assert sorted(p.name for p in root.iterdir()) == ["images"]


def test_unserialisable_meta_fails_atomically(root: Path) -> None:
    path = root / "data.jsonl"
    write_examples(path, _examples(root))
    before = _snapshot(root)
    bad = Example(id="x", images=(), text="t", answers=("a",), task="vqa", meta={"f": object()})
    with pytest.raises(TypeError):
        write_examples(path, [*_examples(root), bad])
    assert _snapshot(root) == before


def test_example_validation() -> None:
    with pytest.raises(ValueError, match="task"):
        Example(id="x", images=(), text="t", answers=("a",), task="ocr")
    with pytest.raises(ValueError, match="id"):
        Example(id="", images=(), text="t", answers=("a",), task="vqa")
    with pytest.raises(ValueError, match="no image"):
        _ = Example(id="x", images=(), text="t", answers=("a",), task="vqa").image


def test_an_example_without_answers_is_a_query_that_cannot_be_a_demonstration() -> None:
    query = Example(id="x", images=(), text="t", answers=(), task="vqa")
    assert not query.has_answers
    assert Example(id="y", images=(), text="t", answers=("a",), task="vqa").has_answers
    with pytest.raises(
        NoAnswersError, match="example 'x' has no answers: it cannot serve as a demonstration"
    ):
        _ = query.answer
    require_answered([], "queries", "why")
    with pytest.raises(NoAnswersError, match=r"1 of 2 queries have no answers \(the first: 'x'\)"):
        require_answered([Example("y", (), "t", ("a",), "vqa"), query], "queries", "scoring")


def test_empty_answers_are_a_query_without_references(root: Path) -> None:
    lines = [
        json.dumps(_record(id="q1")),
        json.dumps(_record(id="q2", answers=[])),
        json.dumps(_record(id="q3", answers=[])),
    ]
    path = _write_lines(root / "data.jsonl", lines)
    examples = validate_dataset(path)
    assert [e.answers for e in examples] == [("red", "red", "crimson"), (), ()]
    assert count_unanswered(examples) == 2
    # As a pool (demonstrations) the first answerless example is an error naming its line.
    with pytest.raises(DataError, match=r"data\.jsonl:2: example 'q2' has no answers"):
        read_examples(path, require_answers=True)
    with pytest.raises(DataError, match=r"data\.jsonl:2: .*pool's examples serve as demo"):
        validate_dataset(path, require_answers=True)
    # As scored queries: counted.
    with pytest.raises(
        DataError,
        match=r"data\.jsonl: 2 of 3 queries have no answers; scoring needs references",
    ):
        require_references(path, examples)
    require_references(path, examples[:1])
    # Written back as "answers": [].
    write_examples(root / "copy.jsonl", examples)
    assert json.loads((root / "copy.jsonl").read_text().splitlines()[1])["answers"] == []
    assert read_examples(root / "copy.jsonl") == examples

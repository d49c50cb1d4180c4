"""TaskSpec validation and JSON task files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drum.lvlm.prompt import PromptTemplate
from drum.tasks.spec import TaskFileError, TaskSpec, load_task_file


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task_type": "detection"}, "task_type"),
        ({"metrics": ("no_such_metric",)}, "unknown metric"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"name": ""}, "name"),
    ],
)
def test_task_spec_validates(kwargs: dict, message: str) -> None:
    fields = {"name": "t", "task_type": "vqa", "pool": "p.jsonl", "queries": "q.jsonl"}
    with pytest.raises(ValueError, match=message):
        TaskSpec(**{**fields, **kwargs})


def test_task_spec_to_dict_is_json_ready() -> None:
    spec = TaskSpec("t", "classification", Path("p.jsonl"), Path("q.jsonl"), max_new_tokens=2)
    record = json.loads(json.dumps(spec.to_dict()))
    assert record["metrics"] == ["accuracy"]
    assert record["max_new_tokens"] == 2
    assert record["template"] == {"user": "{text}", "answer": "{answer}"}


def _write_task(directory: Path, data_root: Path, **overrides: object) -> Path:
    """A task file in ``directory`` whose data paths are ``data_root`` / vqa / ...: relative
    when ``data_root`` is, i.e. relative to the task file."""
    record = {
        "name": "my-vqa",
        "task_type": "vqa",
        "pool": str(data_root / "vqa" / "pool.jsonl"),
        "queries": str(data_root / "vqa" / "test.jsonl"),
        **overrides,
    }
    record = {key: value for key, value in record.items() if value is not None}
    directory.mkdir(exist_ok=True)
    path = directory / "task.json"
    path.write_text(json.dumps(record))
    return path


def test_load_task_file_resolves_paths_relative_to_the_file(tiny_world: Path) -> None:
    path = _write_task(
        tiny_world.parent / "tasks",
        Path("..") / tiny_world.name,
        template={"user": "Q: {text}"},
        max_new_tokens=5,
    )
    spec = load_task_file(path)
    assert spec.pool == (tiny_world / "vqa" / "pool.jsonl").resolve()
    assert spec.template == PromptTemplate(user="Q: {text}")
    assert spec.metrics == ("vqa_accuracy",)
    assert spec.max_new_tokens == 5


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": None}, "name"),
        ({"task_type": "detection"}, "task_type"),
        ({"pool": "missing.jsonl"}, "pool"),
        ({"template": {"user": "no placeholder"}}, "template"),
        ({"metrics": ["bogus"]}, "metrics"),
        ({"metrics": "vqa_accuracy"}, "metrics"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"shots": 4}, "shots"),
    ],
)
def test_load_task_file_names_the_file_and_the_bad_field(
    tiny_world: Path, tmp_path: Path, overrides: dict, field: str
) -> None:
    path = _write_task(tmp_path / "tasks", tiny_world, **overrides)
    with pytest.raises(TaskFileError) as info:
        load_task_file(path)
    assert str(path) in str(info.value)
    assert field in str(info.value)


def test_load_task_file_reports_malformed_json(tmp_path: Path) -> None:
    path = tmp_path / "task.json"
    path.write_text("{not json")
    with pytest.raises(TaskFileError, match="not valid JSON"):
        load_task_file(path)
    with pytest.raises(TaskFileError, match="not found"):
        load_task_file(tmp_path / "absent.json")


@pytest.mark.parametrize(
    ("template", "field", "placeholder"),
    [
        ({"user": "Q: {text} {foo}"}, "'user'", "{foo}"),
        ({"user": "Q: {text} {0}"}, "'user'", "{0}"),
        ({"user": "Q: {text} {}"}, "'user'", "{}"),
        ({"user": "Q: {text} {text.upper}"}, "'user'", "{text.upper}"),
        ({"user": "Q: {text} {"}, "'user'", "lone '{'"),
        ({"user": "Q: {text} }"}, "'user'", "lone '}'"),
        ({"answer": "A: {answer} {text}"}, "'answer'", "{text}"),
        ({"user": "Q: {text:d}"}, "'user'", "{text:d}"),
    ],
)
def test_a_bad_placeholder_is_named_when_the_task_file_is_read(
    tiny_world: Path, tmp_path: Path, template: dict, field: str, placeholder: str
) -> None:
    path = _write_task(tmp_path / "tasks", tiny_world, template=template)
    with pytest.raises(TaskFileError) as info:
        load_task_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}: field 'template': {field}")
    assert placeholder in message and "\n" not in message


def test_literal_braces_and_format_specs_that_fit_a_string_pass() -> None:
    template = PromptTemplate(user="{{json}} {text:>3}", answer="[{answer!s}]")
    assert template.user.format(text="a") == "{json}   a"

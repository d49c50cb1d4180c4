"""Evaluation carries its data once: every task file is read once per run and every image
hashed once per task, whatever the strategies and seeds; an LVLM wrapper's facts recorded."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

import drum.data.images
import drum.data.jsonl
import drum.eval.task_data
from drum.builtin.world.tasks import world_tasks
from drum.eval.icl import ICLEvalConfig, check_eval, evaluate_icl, run_icl_eval
from drum.eval.task_data import TaskData, load_task_data
from drum.lvlm.prompt import ICLPrompt
from drum.retrieve import retriever
from drum.testing import FakeLVLM
from tests.lvlm.test_base import Wrapper

CONFIG = ICLEvalConfig(
    strategies=("random", "fixed"), shots=(0, 1, 2), seeds=(0, 1, 2), max_queries=6
)


def test_a_run_reads_each_file_once_and_hashes_each_image_once(
    tiny_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = world_tasks(tiny_world)["vqa"]
    reads: list[Path] = []
    hashed: list[Path] = []
    read, key = drum.eval.task_data.read_examples, drum.data.images.image_key

    def counted_read(path, *args, **kwargs):
        reads.append(Path(path))
        return read(path, *args, **kwargs)

    def counted_key(image):
        hashed.append(Path(image))
        return key(image)

    monkeypatch.setattr(drum.eval.task_data, "read_examples", counted_read)
    monkeypatch.setattr(retriever, "image_key", counted_key)
    loaded = check_eval([task], CONFIG)
    run_icl_eval(loaded, FakeLVLM(), CONFIG, None, tmp_path, progress=False)
    assert sorted(reads) == sorted([task.pool, task.queries])  # by check_eval, not again
    # 2 strategies x 3 seeds of retrieval, each image's bytes hashed once in all.
    assert len(hashed) == len(set(hashed)) > 0
    data = loaded[0]
    images = {image for example in data.pool + data.queries for image in example.images}
    assert set(hashed) == images


def _timeless(rows: list[dict]) -> list[dict]:
    return [{key: value for key, value in row.items() if key != "seconds"} for row in rows]


def test_loaded_data_gives_the_rows_of_the_spec(tiny_world: Path) -> None:
    task = world_tasks(tiny_world)["classification"]
    data = load_task_data(task, CONFIG)
    assert isinstance(data, TaskData) and data.name == task.name and len(data.queries) == 6
    assert data.fits(CONFIG)
    from_data = evaluate_icl(data, FakeLVLM(), CONFIG, progress=False)
    from_spec = evaluate_icl(task, FakeLVLM(), CONFIG, progress=False)
    assert _timeless(from_data) == _timeless(from_spec)
    # Loaded for other limits, it is read again for this config's.
    other = ICLEvalConfig(strategies=("random",), shots=(0, 1), max_queries=3)
    assert not data.fits(other)
    (zero, one) = evaluate_icl(data, FakeLVLM(), other, progress=False)
    assert zero["n_queries"] == one["n_queries"] == 3


class CuttingLVLM(FakeLVLM):
    """Keeps the counts ``HFLVLM`` keeps: every prompt with 2 demonstrations loses one."""

    def __init__(self) -> None:
        super().__init__(fingerprint="cutting")
        self.name, self.context_length, self.context_overflow = "cutter", 64, "drop_demos"
        self.truncated_prompts = self.dropped_demos = 0

    def _generate(
        self, prompts: Sequence[ICLPrompt], max_new_tokens: int, batch_size: int, progress: bool
    ) -> list[str]:
        cut = sum(len(prompt.demos) == 2 for prompt in prompts)
        self.truncated_prompts += cut
        self.dropped_demos += cut
        return super()._generate(prompts, max_new_tokens, batch_size, progress)


def test_a_wrapped_lvlm_is_recorded_by_its_bases_facts(tiny_world: Path, tmp_path: Path) -> None:
    task = world_tasks(tiny_world)["vqa"]
    config = ICLEvalConfig(strategies=("fixed",), shots=(0, 1, 2), max_queries=4)
    results = run_icl_eval([task], Wrapper(CuttingLVLM()), config, None, tmp_path, progress=False)
    lvlm = results["config"]["lvlm"]
    assert (lvlm["name"], lvlm["context_length"], lvlm["context_overflow"]) == (
        "cutter",
        64,
        "drop_demos",
    )
    assert lvlm["fingerprint"] == "cutting+wrapped"
    assert lvlm["class"].endswith("test_base.Wrapper")
    assert [(r["shots"], r["truncated_prompts"], r["dropped_demos"]) for r in results["rows"]] == [
        (0, 0, 0),
        (1, 0, 0),
        (2, 4, 4),
    ]


def test_verify_images_reads_each_file_once_and_names_a_broken_image(
    tiny_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # drum eval's one read: every image decoded while loading, no second pass over the files.
    import shutil

    from drum.data.jsonl import DataError, read_examples

    task = world_tasks(tiny_world)["vqa"]
    reads: list[Path] = []

    def counted_read(path, *args, **kwargs):
        reads.append(Path(path))
        return read_examples(path, *args, **kwargs)

    monkeypatch.setattr(drum.data.jsonl, "read_examples", counted_read)
    loaded = check_eval([task], CONFIG, verify_images=True)
    assert sorted(reads) == sorted([task.pool, task.queries])
    assert loaded[0].queries == load_task_data(task, CONFIG).queries

    world = tmp_path / "world"
    shutil.copytree(tiny_world, world)
    broken = world_tasks(world)["vqa"]
    image = read_examples(broken.queries)[0].images[0]
    Path(image).write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"test\.jsonl:1: unreadable or corrupt image"):
        check_eval([broken], CONFIG, verify_images=True)
    check_eval([broken], CONFIG)  # without verify_images the bytes are not decoded


def test_tasks_sharing_a_file_read_it_once_and_warn_once(tiny_world: Path, tmp_path: Path) -> None:
    import json
    import warnings
    from dataclasses import replace

    from drum.data.jsonl import DataWarning

    task = world_tasks(tiny_world)["vqa"]
    records = [json.loads(line) for line in task.pool.read_text().splitlines()]
    records[3]["extra"] = 1  # an unknown field: one warning
    for record in records:
        record["images"] = [str((task.pool.parent / image).resolve()) for image in record["images"]]
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps(record) + "\n" for record in records))
    tasks = [replace(task, name=f"vqa-{i}", pool=pool) for i in range(3)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = check_eval(tasks, CONFIG, verify_images=True)
    assert [str(w.message).split(":")[0] for w in caught if w.category is DataWarning] == [
        str(pool)
    ]
    assert loaded[0].pool is loaded[1].pool is loaded[2].pool  # read once, shared

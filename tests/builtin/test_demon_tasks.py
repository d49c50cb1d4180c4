"""Built-in DEMON-style tasks: coverage of DEMON's categories, the release format read back,
determinism, answers determined by the images, and chance levels in the card."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from drum.builtin.demon import (
    DEMON_TASKS,
    IMAGE_CHOICE_BUILTIN_TASKS,
    BuiltinDemonConfig,
    make_builtin_demon,
)
from drum.builtin.demon.chance import chance_level
from drum.builtin.demon.instructions import INSTRUCTIONS
from drum.builtin.demon.make import CARD, META
from drum.builtin.demon.scenes import ATTRIBUTES, LETTERS, ORDINALS, _digits
from drum.builtin.demon.vocab import vocabulary
from drum.builtin.world.language import COUNT_WORDS, canonical_caption
from drum.builtin.world.scene import Scene, render_scene
from drum.demon.categories import CATEGORIES, MULTI_CHOICE, OPEN_ENDED
from drum.demon.format import PLACEHOLDER, DemonTask, read_demon_task
from drum.demon.prompt import demon_text
from drum.demon.scorers import (
    IMAGE_CHOICE_TASKS,
    score_image_choice,
    score_multiple_choice,
    score_open_ended,
)

CONFIG = BuiltinDemonConfig(seed=3, n_train=12, n_test=30)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("builtin_demon") / "root"
    make_builtin_demon(None, out, CONFIG)
    return out


def _task(root: Path, name: str, split: str = "test") -> tuple[DemonTask, list[dict[str, Any]]]:
    task_dir = root / split / name
    metas = [json.loads(line) for line in (task_dir / META).read_text().splitlines()]
    return read_demon_task(task_dir), metas


def _scene(meta: dict[str, Any]) -> Scene:
    return Scene(
        meta["shape"], meta["colour"], meta["size"], meta["count"], tuple(meta["cells"]),
        meta["background"], meta["noise_seed"],
    )  # fmt: skip


def _value(scene: dict[str, Any], attribute: str) -> str:
    value = scene[attribute]
    return COUNT_WORDS[value] if attribute == "count" else str(value)


def _attrs(scene: dict[str, Any]) -> tuple:
    return tuple(scene[a] for a in ATTRIBUTES)


# ----------------------------------------------------------------------------- the registry


def test_every_category_is_covered_with_enough_tasks() -> None:
    by_category: dict[str, list[str]] = {}
    for name, spec in DEMON_TASKS.items():
        by_category.setdefault(spec.category, []).append(name)
    assert set(by_category) == set(CATEGORIES)
    assert len(by_category["multi_modal_cloze"]) >= 2
    assert len(by_category["multi_image_reasoning"]) >= 2


def test_task_names_are_our_own() -> None:
    real = {task for tasks in CATEGORIES.values() for task in tasks}
    assert not set(DEMON_TASKS) & real
    assert not set(DEMON_TASKS) & IMAGE_CHOICE_TASKS


def test_ten_instructions_each_and_both_question_types() -> None:
    assert set(INSTRUCTIONS) == set(DEMON_TASKS)
    for name in DEMON_TASKS:
        assert len(INSTRUCTIONS[name]) == 10
        assert len(set(INSTRUCTIONS[name])) == 10
    assert {spec.question_type for spec in DEMON_TASKS.values()} == {OPEN_ENDED, MULTI_CHOICE}
    assert IMAGE_CHOICE_BUILTIN_TASKS and IMAGE_CHOICE_BUILTIN_TASKS <= set(DEMON_TASKS)
    for name in IMAGE_CHOICE_BUILTIN_TASKS:
        assert DEMON_TASKS[name].question_type == MULTI_CHOICE


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="n_test"):
        BuiltinDemonConfig(n_test=1)
    with pytest.raises(ValueError, match="image_size"):
        BuiltinDemonConfig(image_size=16)
    with pytest.raises(ValueError, match="noise_std"):
        BuiltinDemonConfig(noise_std=-1.0)


# ----------------------------------------------------------------------------- the files


def test_written_root_reads_back_in_the_release_format(root: Path) -> None:
    for split, n in CONFIG.split_sizes().items():
        for name, spec in DEMON_TASKS.items():
            task, metas = _task(root, name, split)
            assert (task.name, task.split, task.question_type) == (name, split, spec.question_type)
            assert task.instructions == INSTRUCTIONS[name]
            assert len(task.samples) == len(metas) == n
            for sample, meta in zip(task.samples, metas, strict=True):
                assert meta["sample_id"] == sample.sample_id
                assert len(sample.images) == len(meta["scenes"])
                # Every image is shown exactly once, by placeholders numbered 1..n.
                text = sample.context + " ".join(sample.choices or ())
                shown = sorted(int(k) for k in PLACEHOLDER.findall(text))
                assert shown == list(range(1, len(sample.images) + 1))
                assert all(image.is_file() for image in sample.images)
                if spec.question_type == OPEN_ENDED:
                    assert sample.choices is None
                else:
                    assert sample.choices is not None and sample.response in (
                        c.split(":")[0] for c in sample.choices
                    )


def test_image_choice_tasks_use_the_image_labels(root: Path) -> None:
    for name in IMAGE_CHOICE_BUILTIN_TASKS:
        task, _ = _task(root, name)
        for sample in task.samples:
            assert re.fullmatch(r"Image [ABCD]", sample.response)
            assert [c.split(":")[0] for c in sample.choices or ()] == [
                f"Image {x}" for x in LETTERS
            ]
        # Answers spread over the four labels.
        assert len({sample.response for sample in task.samples}) == 4


def test_every_word_is_in_the_vocabulary(root: Path) -> None:
    words = set(vocabulary())
    for name in DEMON_TASKS:
        task, _ = _task(root, name)
        for sample in task.samples:
            text = PLACEHOLDER.sub(" ", demon_text(task, sample))
            text = text.replace("['", " ").replace("']", " ").replace("', '", " ")
            text = (
                text.replace(":", " : ").replace("Choice list", " ").replace("Your answer is", " ")
            )
            unknown = set(text.replace("Image ", " ").split()) - words
            assert not unknown, (name, unknown)
            if name not in IMAGE_CHOICE_BUILTIN_TASKS:
                assert set(sample.response.split()) <= words


def test_the_true_answer_scores_one_and_a_wrong_choice_zero(root: Path) -> None:
    for name, spec in DEMON_TASKS.items():
        task, _ = _task(root, name)
        for sample in task.samples:
            if spec.question_type == OPEN_ENDED:
                assert score_open_ended(sample.response, sample.response) == pytest.approx(1.0)
                continue
            choices = sample.choices or ()
            for choice in choices:
                right = choice.split(":")[0] == sample.response
                if name in IMAGE_CHOICE_BUILTIN_TASKS:
                    score = score_image_choice(choice, sample.response)
                else:
                    score = score_multiple_choice(choice, choices, sample.response)
                assert score == float(right), (name, sample.sample_id, choice)


def _digest(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_same_seed_gives_byte_identical_files(root: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    folders = make_builtin_demon(None, again, CONFIG)
    assert _digest(again) == _digest(root)
    assert folders == [again / split / name for split in ("train", "test") for name in DEMON_TASKS]
    other = tmp_path / "other"
    make_builtin_demon(None, other, BuiltinDemonConfig(seed=4, n_train=12, n_test=30))
    assert _digest(other) != _digest(root)


def test_failed_run_leaves_the_old_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "root"
    small = BuiltinDemonConfig(n_train=2, n_test=2)
    make_builtin_demon(None, out, small)
    before = _digest(out)

    def broken(rng: np.random.Generator, split: str) -> None:
        raise RuntimeError("killed")

    monkeypatch.setitem(
        DEMON_TASKS, "WhichImage", DEMON_TASKS["WhichImage"]._replace(generator=broken)
    )
    with pytest.raises(RuntimeError, match="killed"):
        make_builtin_demon(None, out, BuiltinDemonConfig(seed=1, n_train=2, n_test=2))
    assert _digest(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root"]


def test_card_records_config_and_chance_levels(root: Path) -> None:
    card = json.loads((root / CARD).read_text())
    assert card["config"]["seed"] == 3 and card["config"]["image_size"] == 32
    assert card["splits"] == {"train": 12, "test": 30}
    assert card["world"] is None
    assert set(card["tasks"]) == set(DEMON_TASKS)
    for name, entry in card["tasks"].items():
        assert entry["category"] == DEMON_TASKS[name].category
        assert entry["image_choice"] == (name in IMAGE_CHOICE_BUILTIN_TASKS)
        for split in ("train", "test"):
            task, _ = _task(root, name, split)
            expected = chance_level(task, name in IMAGE_CHOICE_BUILTIN_TASKS)
            assert entry["chance"][split] == pytest.approx(expected)
            assert 0.0 < entry["chance"][split] < 0.6
    assert card["tasks"]["WhichImage"]["chance"]["test"] == pytest.approx(0.25)
    assert card["tasks"]["MissingPanel"]["chance"]["test"] == pytest.approx(0.25)
    assert card["tasks"]["SameCount"]["chance"]["test"] == pytest.approx(0.5)
    assert card["tasks"]["SamePlaces"]["chance"]["test"] == pytest.approx(0.5)
    assert card["tasks"]["DigitBoard"]["chance"]["test"] == pytest.approx(1 / 3)


def test_world_sets_image_size_and_is_recorded(tiny_world: Path, tmp_path: Path) -> None:
    world_card = json.loads((tiny_world / "world.json").read_text())
    make_builtin_demon(tiny_world, tmp_path / "w", BuiltinDemonConfig(n_train=2, n_test=2))
    card = json.loads((tmp_path / "w" / CARD).read_text())
    assert card["world"]["config"] == world_card["config"]
    size = world_card["config"]["image_size"]
    assert card["config"]["image_size"] == size
    image = Image.open(read_demon_task(tmp_path / "w" / "test" / "SameCount").samples[0].images[0])
    assert image.size == (size, size)


# ----------------------------------------------------------------------------- the answers


def test_shape_chat_answers_the_carried_attribute_of_the_remaining_image(root: Path) -> None:
    task, metas = _task(root, "ShapeChat")
    for sample, meta in zip(task.samples, metas, strict=True):
        scene = meta["scenes"][meta["asked_image"]]
        assert sample.response == _value(scene, meta["attribute"])
        assert f"and the {ORDINALS[meta['asked_image']]} image ?" in sample.context
        # The second turn asks the carried attribute and answers it truly.
        second = sample.context.split("human : ")[2]
        assert meta["attribute"] in second or (meta["attribute"] == "count" and "many" in second)


def test_shape_story_continues_the_alternation(root: Path) -> None:
    task, metas = _task(root, "ShapeStory")
    for sample, meta in zip(task.samples, metas, strict=True):
        first, second, third = (_attrs(s) for s in meta["scenes"])
        changed = [a for a, x, y in zip(ATTRIBUTES, first, second, strict=True) if x != y]
        assert changed == [meta["attribute"]] and first == third
        assert _attrs(meta["next_scene"]) == second
        assert sample.response == canonical_caption(_scene(meta["scenes"][1]))


def test_spot_the_edit_matches_the_scenes(root: Path) -> None:
    task, metas = _task(root, "SpotTheEdit")
    for sample, meta in zip(task.samples, metas, strict=True):
        before, after = meta["scenes"]
        changed = [a for a in ATTRIBUTES if before[a] != after[a]]
        attribute = meta["edit"]["attribute"]
        assert changed == [attribute]
        assert (before["noise_seed"], before["background"]) == (
            after["noise_seed"],
            after["background"],
        )
        assert sample.response == f"{_value(before, attribute)} to {_value(after, attribute)}"
    assert {m["edit"]["attribute"] for m in metas} == set(ATTRIBUTES)


def test_moved_object_matches_the_cells(root: Path) -> None:
    rows, columns = ("top", "middle", "bottom"), ("left", "centre", "right")
    task, metas = _task(root, "MovedObject")
    for sample, meta in zip(task.samples, metas, strict=True):
        before, after = meta["scenes"]
        assert _attrs(before) == _attrs(after)  # one caption for both images
        assert canonical_caption(_scene(before)) == canonical_caption(_scene(after))
        (left,) = set(before["cells"]) - set(after["cells"])
        (went,) = set(after["cells"]) - set(before["cells"])
        assert meta["move"] == {"from": left, "to": went}
        names = [f"{rows[c // 3]} {columns[c % 3]}" for c in (left, went)]
        assert sample.response == f"{names[0]} to {names[1]}"


def test_missing_panel_has_one_candidate_that_fits(root: Path) -> None:
    task, metas = _task(root, "MissingPanel")
    for sample, meta in zip(task.samples, metas, strict=True):
        shown, candidates = meta["scenes"][:3], meta["scenes"][3:]
        frames: list[Any] = [_attrs(s) for s in shown]
        frames.insert(meta["blank"], None)
        # The blank frame equals the frame two steps away (the alternation's period).
        partner = meta["blank"] - 2 if meta["blank"] >= 2 else meta["blank"] + 2
        fits = [i for i, c in enumerate(candidates) if _attrs(c) == frames[partner]]
        assert fits == [meta["answer_index"]]
        assert sample.response == f"Image {LETTERS[fits[0]]}"
        assert len({_attrs(c) for c in candidates}) == 4


def test_image_choice_candidates_have_no_centre(root: Path) -> None:
    # Were the answer the one candidate the others are edits of, it could be found without
    # reading the question: every candidate has the same total distance to the others.
    for name, first in (("MissingPanel", 3), ("WhichImage", 0)):
        _, metas = _task(root, name)
        for meta in metas:
            candidates = [_attrs(s) for s in meta["scenes"][first:]]
            totals = {
                sum(sum(x != y for x, y in zip(a, b, strict=True)) for b in candidates)
                for a in candidates
            }
            assert totals == {4}, (name, meta["sample_id"])


def test_caption_cloze_blank_is_read_from_its_image(root: Path) -> None:
    task, metas = _task(root, "CaptionCloze")
    for sample, meta in zip(task.samples, metas, strict=True):
        captions = sample.context.split(" . ")
        for k, scene in enumerate(meta["scenes"]):
            words = captions[k].split()[1:]
            truth = canonical_caption(_scene(scene)).split()
            if k == meta["blank_image"]:
                assert words.count("blank") == 1
                assert truth[words.index("blank")] == sample.response
            else:
                assert words == truth


def test_shape_facts_answer_follows_the_facts_and_the_selected_image(root: Path) -> None:
    task, metas = _task(root, "ShapeFacts")
    for sample, meta in zip(task.samples, metas, strict=True):
        facts = dict(re.findall(r"(\w+) keeps (\w+)", sample.context))
        wanted = re.search(r"the image with (\w+) objects", sample.context)[1]
        matches = [s for s in meta["scenes"] if _value(s, meta["selector"]) == wanted]
        assert len(matches) == 1
        key = matches[0][meta["key"]]
        owner = [name for name, what in facts.items() if what.rstrip("es") in key or what == key]
        assert sample.response == meta["keepers"][key]
        assert sample.response in owner


def test_digit_board_marks_images_with_real_handwritten_digits(root: Path) -> None:
    images, targets = _digits()
    for split in ("train", "test"):
        task, metas = _task(root, "DigitBoard", split)
        for sample, meta in zip(task.samples, metas, strict=True):
            glyphs = meta["digit_glyphs"]
            assert [int(targets[g]) for g in glyphs] == meta["digits"]
            assert all(g % 2 == (split == "test") for g in glyphs)  # disjoint samples
            asked = int(re.search(r"marked (\d) \?", sample.context)[1])
            target = meta["digits"].index(asked)
            assert target == meta["target_image"]
            assert sample.response == _value(meta["scenes"][target], meta["attribute"])
            assert 0 not in [c for s in meta["scenes"] for c in s["cells"]]


def _rendered_count(scene: dict[str, Any]) -> int:
    pixels = render_scene(_scene(scene), 32, noise_std=0.0).astype(int)
    mask = pixels.max(axis=2) - pixels.min(axis=2) > 60
    return int(ndimage.label(mask)[1])


def test_same_count_is_the_count_of_the_rendered_scenes(root: Path) -> None:
    task, metas = _task(root, "SameCount")
    for sample, meta in zip(task.samples, metas, strict=True):
        first, second = meta["scenes"]
        counts = [_rendered_count(first), _rendered_count(second)]
        assert counts == meta["counts"] == [first["count"], second["count"]]
        assert sample.response == ("same" if counts[0] == counts[1] else "different")
        assert all(first[a] != second[a] for a in ("shape", "colour", "size"))
    assert {sample.response for sample in task.samples} == {"same", "different"}


def test_same_places_follows_the_cells(root: Path) -> None:
    task, metas = _task(root, "SamePlaces")
    for sample, meta in zip(task.samples, metas, strict=True):
        first, second = meta["scenes"]
        assert _attrs(first) == _attrs(second)  # one caption for both images
        assert first["noise_seed"] != second["noise_seed"]
        same = first["cells"] == second["cells"]
        assert sample.response == ("same" if same else "different")
        assert (meta["move"] is None) == same
        if not same:
            assert set(first["cells"]) ^ set(second["cells"]) == set(meta["move"].values())
    assert {sample.response for sample in task.samples} == {"same", "different"}


def test_which_image_has_exactly_one_match(root: Path) -> None:
    task, metas = _task(root, "WhichImage")
    for sample, meta in zip(task.samples, metas, strict=True):
        description = re.search(r"which image shows (.+) \?", sample.context)[1].split()
        assert len(meta["scenes"]) == 4

        def fits(scene: dict[str, Any], meta: dict = meta, description: list = description) -> bool:
            for attribute in meta["attributes"]:
                value = _value(scene, attribute)
                if attribute == "shape":
                    if not description[-1].startswith(value):
                        return False
                elif value not in description:
                    return False
            return True

        matches = [i for i, scene in enumerate(meta["scenes"]) if fits(scene)]
        assert matches == [meta["answer_index"]]
        assert sample.response == f"Image {LETTERS[matches[0]]}"


def test_every_scene_shows_its_count(root: Path) -> None:
    # Objects never sit side by side, so even large diamonds stay apart in the pixels.
    for name in DEMON_TASKS:
        _, metas = _task(root, name)
        for meta in metas:
            for scene in meta["scenes"]:
                assert _rendered_count(scene) == scene["count"], (name, scene)


def test_docs_table_gives_the_default_chance_levels(tmp_path: Path) -> None:
    # docs/demon.md quotes the test split of the default seed; only that split matters here.
    make_builtin_demon(None, tmp_path / "d", BuiltinDemonConfig(seed=0, n_train=2, n_test=100))
    card = json.loads((tmp_path / "d" / CARD).read_text())
    docs = (Path(__file__).parents[2] / "docs" / "demon.md").read_text()
    section = docs.split("## Built-in tasks", 1)[1]
    rows = dict(re.findall(r"^\| (\w+) \|.* \| ([0-9.]+) \|$", section, flags=re.M))
    assert set(rows) == set(DEMON_TASKS)
    for name, quoted in rows.items():
        assert float(quoted) == pytest.approx(card["tasks"][name]["chance"]["test"], abs=0.005)


def test_prompts_show_every_image_once_in_order(root: Path) -> None:
    from drum.demon.prompt import demon_prompt
    from drum.lvlm.prompt import ImagePart

    for name in DEMON_TASKS:
        task, _ = _task(root, name)
        for sample in task.samples[:5]:
            parts = demon_prompt(task, sample).query.parts
            images = [part for part in parts if isinstance(part, ImagePart)]
            assert [Path(part.path) for part in images] == list(sample.images)


def test_score_sample_routes_the_image_choice_tasks_to_image_choice() -> None:
    from drum.demon.scorers import score_sample

    for name in IMAGE_CHOICE_BUILTIN_TASKS:
        choices = ["Image A", "Image B", "Image C", "Image D"]
        # TF-IDF would tie all four options and pick the first; image choice reads the answer.
        assert score_sample(name, "multi-choice", "image b", "Image B", choices) == 1.0
        assert score_sample(name, "multi-choice", "image a", "Image B", choices) == 0.0


def test_register_card_scoring_routes_the_roots_image_choice_tasks(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from drum.builtin.demon.card import register_card_scoring
    from drum.demon import scorers

    monkeypatch.setattr(scorers, "_REGISTERED_IMAGE_CHOICE_TASKS", set())
    assert register_card_scoring(tmp_path) == frozenset()  # no card: nothing registered
    assert not IMAGE_CHOICE_BUILTIN_TASKS & scorers.routed_image_choice_tasks()
    assert register_card_scoring(root / "test") == IMAGE_CHOICE_BUILTIN_TASKS
    assert IMAGE_CHOICE_BUILTIN_TASKS <= scorers.routed_image_choice_tasks()


def test_importing_the_kits_tasks_registers_them() -> None:
    import subprocess
    import sys

    code = (
        "from drum.demon.scorers import routed_image_choice_tasks as r\n"
        "assert 'WhichImage' not in r()\n"
        "import drum.builtin.demon.tasks as t\n"
        "assert t.IMAGE_CHOICE_BUILTIN_TASKS <= r()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

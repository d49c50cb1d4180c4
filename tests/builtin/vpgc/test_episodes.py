"""Synthetic in-context episodes with an edited twin (``drum.builtin.vpgc.episodes``), the
world LVLM's probe episodes as prompts (``drum.builtin.lvlm.episodes.probe_samples``), and
VPG-C training on them (``train_on_synthetic``, ``source="episodes"``) on the world LVLM."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from drum.adapters.vpgc import load_adapter
from drum.adapters.vpgc.train import VPGCTrainConfig
from drum.builtin.lvlm.episodes import probe_samples
from drum.builtin.vpgc.data import _cell_box, least_attended_regions
from drum.builtin.vpgc.episodes import (
    TwinEpisodeConfig,
    episodes_digest,
    load_twin_samples,
    make_twin_episodes,
    read_twin_episodes,
)
from drum.builtin.vpgc.sources import VPGCDataConfig, train_on_synthetic
from drum.builtin.world.generate import WorldConfig, make_world
from drum.data.example import Example
from drum.lvlm.hf import HFLVLM
from drum.lvlm.prompt import ImagePart, TextPart, build_prompt

WORLD_LVLM = Path("drum/assets/builtin/lvlm")


@pytest.fixture(scope="module")
def world_lvlm() -> HFLVLM:
    return HFLVLM(WORLD_LVLM)


@pytest.fixture(scope="module")
def random_episodes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("twins") / "episodes"
    return make_twin_episodes(out, TwinEpisodeConfig(n_train=60, region="random", seed=3))


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def test_the_twin_differs_from_the_query_only_where_it_was_edited(random_episodes: Path) -> None:
    images = random_episodes / "images"
    kinds = set()
    for record in read_twin_episodes(random_episodes):
        query = _pixels(images / record["query"]["image"])
        twin = next(d for d in record["demos"] if d["role"] == "twin")
        changed = np.abs(_pixels(images / twin["image"]) - query).sum(axis=-1) > 0
        edit = record["edit"]
        kinds.add(edit["kind"])
        cells = [edit["cell"]] if edit["kind"] in ("add", "remove") else edit["cells"]
        allowed = np.zeros_like(changed)
        for cell in cells:
            rows, cols = _cell_box(cell, query.shape[0])
            allowed[rows, cols] = True
        assert changed.any(), record["id"]
        assert not (changed & ~allowed).any(), f"{record['id']}: pixels changed outside the edit"
    assert kinds >= {"colour", "shape", "add", "remove"}


def test_answers_follow_the_roles(random_episodes: Path) -> None:
    roles = set()
    for record in read_twin_episodes(random_episodes):
        by_role: dict[str, list[str]] = {}
        for demo in record["demos"]:
            by_role.setdefault(demo["role"], []).append(demo["answer"])
        roles |= set(by_role)
        assert len(by_role["twin"]) == len(by_role["match"]) == 1
        if record["task"] == "caption":
            continue  # a caption's match shares its shape and colour words, not the whole text
        assert by_role["match"] == [record["answer"]], record["id"]
        assert record["twin_answer"] != record["answer"], record["id"]
        assert all(answer != record["answer"] for answer in by_role.get("miss", [])), record["id"]
    assert roles == {"twin", "match", "miss", "random"}


def test_episodes_are_deterministic_from_the_seed(random_episodes: Path, tmp_path: Path) -> None:
    again = make_twin_episodes(
        tmp_path / "a", TwinEpisodeConfig(n_train=60, region="random", seed=3)
    )
    other = make_twin_episodes(
        tmp_path / "b", TwinEpisodeConfig(n_train=60, region="random", seed=4)
    )
    assert episodes_digest(again) == episodes_digest(random_episodes)
    assert episodes_digest(other) != episodes_digest(random_episodes)


def test_attention_regions_are_the_query_prompts_least_attended_patches(
    world_lvlm: HFLVLM, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="needs the base LVLM"):
        make_twin_episodes(tmp_path / "x", TwinEpisodeConfig(n_train=2))
    out = make_twin_episodes(tmp_path / "att", TwinEpisodeConfig(n_train=12), world_lvlm)
    records = read_twin_episodes(out)
    probes = [
        build_prompt(
            [],
            Example(
                id="q",
                images=(out / "images" / r["query"]["image"],),
                text=r["query"]["text"],
                answers=(r["answer"],),
                task=r["task"],
            ),
        )
        for r in records
    ]
    assert [r["region"] for r in records] == least_attended_regions(world_lvlm, probes)
    card = json.loads((out / "twin_episodes.json").read_text(encoding="utf-8"))
    assert card["base"] == world_lvlm.fingerprint


def test_samples_are_the_prompts_evaluation_builds(random_episodes: Path) -> None:
    records = read_twin_episodes(random_episodes)
    samples = load_twin_samples(random_episodes)
    assert len(samples) == len(records)
    for record, (prompt, answer) in zip(records, samples, strict=True):
        assert answer == record["answer"]
        assert [turn.answer for turn in prompt.demos] == [d["answer"] for d in record["demos"]]
        image, text = prompt.query.parts
        assert isinstance(image, ImagePart) and image.path.is_file()
        assert isinstance(text, TextPart) and text.text == record["query"]["text"]


def test_a_bad_episode_file_names_its_line(random_episodes: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "twin_episodes.json").write_text("{}", encoding="utf-8")
    lines = (random_episodes / "episodes.jsonl").read_text(encoding="utf-8").splitlines()
    (broken / "episodes.jsonl").write_text("\n".join([lines[0], "{oops"]), encoding="utf-8")
    with pytest.raises(ValueError, match=r"episodes\.jsonl:2: not JSON"):
        read_twin_episodes(broken)
    with pytest.raises(FileNotFoundError, match="holds no twin episodes"):
        read_twin_episodes(tmp_path)


def test_oracle1_probe_prompts_hold_exactly_one_revealing_demonstration(tmp_path: Path) -> None:
    world = make_world(tmp_path / "world", WorldConfig(n_train=50, n_pool=60, n_val=30, n_test=60))
    kinds = ("match", "miss", "miss", "miss")
    samples = probe_samples(world, "vqa", kinds, episodes=20, seed=0)
    assert len(samples) == 20
    for prompt, answer in samples:
        assert len(prompt.demos) == 4
        assert [turn.answer for turn in prompt.demos].count(answer) == 1
    again = probe_samples(world, "vqa", kinds, episodes=20, seed=0)
    assert [(p.to_messages(), a) for p, a in again] == [(p.to_messages(), a) for p, a in samples]


def test_vpgc_trains_on_episodes_and_the_adapter_loads(tmp_path: Path) -> None:
    config = VPGCTrainConfig(max_steps=4, batch_size=4, checkpoint_every=2, log_every=1)
    episodes = VPGCDataConfig(source="episodes", n_train=10, region="random")
    data = tmp_path / "data"
    out = train_on_synthetic(
        WORLD_LVLM, tmp_path / "adapter", config, episodes, data_dir=data, progress=False
    )
    card = json.loads((out / "vpgc_train.json").read_text(encoding="utf-8"))
    assert card["steps"] == 4 and card["share_of_base"] < 0.01
    assert all(np.isfinite(entry["loss"]) for entry in card["history"])
    assert len(read_twin_episodes(data)) == 10
    model = load_adapter(HFLVLM(WORLD_LVLM), out)
    prompt, answer = load_twin_samples(data)[0]
    assert len(model.generate([prompt])) == 1
    assert np.isfinite(model.score([prompt], [answer])[0].sum)


def test_source_must_be_known() -> None:
    with pytest.raises(ValueError, match="source must be one of"):
        VPGCDataConfig(source="photographs")

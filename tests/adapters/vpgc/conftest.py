"""Tiny random bases for the VPG-C tests (the ``HFLVLM`` tests' families, built from config
once per session) and the prompts they run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from drum.data import read_examples
from drum.lvlm.hf import HFLVLM
from drum.lvlm.prompt import ICLPrompt, TextPart, Turn, build_prompt
from tests.lvlm import tiny_lvlms
from tests.lvlm.prompts import interleaved_prompts

Prompts = tuple[list[ICLPrompt], list[str]]


@pytest.fixture(scope="session")
def vpgc_base_dir(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Each family's tiny model, saved at most once per session; its directory."""
    built: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in built:
            path = tmp_path_factory.mktemp(f"vpgc-{family}")
            built[family] = tiny_lvlms.BUILDERS[family](path).path
        return built[family]

    return get


@pytest.fixture
def fresh_base(vpgc_base_dir: Callable[[str], Path]) -> Callable[[str], HFLVLM]:
    """A freshly loaded base (adapters freeze their base in place: no sharing across tests)."""
    return lambda family: HFLVLM(vpgc_base_dir(family))


@pytest.fixture(scope="session")
def vpgc_prompts(tiny_world: Path) -> Prompts:
    """Prompts with 2, 3 and 3 interleaved images, one with 1 image and one without any."""
    pool = read_examples(tiny_world / "vqa" / "pool.jsonl")
    prompts, answers = interleaved_prompts(pool)
    return (
        [*prompts, build_prompt(pool[4:5], pool[5]), ICLPrompt((), Turn((TextPart("one"),)))],
        [*answers, "red blue green", pool[6].answer],
    )

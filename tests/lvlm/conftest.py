"""Fixtures shared by the ``HFLVLM`` tests: each tiny family built once per session, and the
prompts the tests run (images-then-text prompts, and interleaved ones with 2 and 3 images)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from drum.data import read_examples
from drum.lvlm.hf import HFLVLM
from drum.lvlm.prompt import ICLPrompt, build_prompt
from tests.lvlm import tiny_lvlms
from tests.lvlm.prompts import interleaved_prompts

FAMILIES = tuple(tiny_lvlms.BUILDERS)


@pytest.fixture(scope="session")
def build(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Any]:
    """Each family's tiny model, built and saved at most once per session."""
    built: dict[str, Any] = {}

    def get(family: str) -> Any:
        if family not in built:
            built[family] = tiny_lvlms.BUILDERS[family](tmp_path_factory.mktemp(family))
        return built[family]

    return get


@pytest.fixture(scope="session", params=FAMILIES)
def tiny(request: pytest.FixtureRequest, build: Callable[[str], Any]) -> Any:
    return build(request.param)


@pytest.fixture(scope="session")
def lvlm(tiny: Any) -> HFLVLM:
    return HFLVLM(tiny.path)


@pytest.fixture(scope="session")
def batch(tiny_world: Path) -> tuple[list[ICLPrompt], list[str]]:
    """Three prompts with 2, 0 and 1 demos and answers of 1, 2 and 3 tokens."""
    pool = read_examples(tiny_world / "vqa" / "pool.jsonl")
    prompts = [
        build_prompt(pool[1:3], pool[0]),
        build_prompt([], pool[3]),
        build_prompt(pool[4:5], pool[5]),
    ]
    answers = [pool[0].answer, f"{pool[3].answer} {pool[4].answer}", "red blue green"]
    return prompts, answers


@pytest.fixture(scope="session")
def interleaved(tiny_world: Path) -> tuple[list[ICLPrompt], list[str]]:
    return interleaved_prompts(read_examples(tiny_world / "vqa" / "pool.jsonl"))

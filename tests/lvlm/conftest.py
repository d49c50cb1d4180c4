"""Fixtures shared by the ``HFLVLM`` tests: each tiny family built once per session, and the
prompts the tests run (images-then-text prompts, and interleaved ones with 2 and 3 images)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from drum.data import read_examples
from drum.lvlm.hf import HFLVLM
from drum.lvlm.prompt import ICLPrompt, ImagePart, TextPart, Turn, build_prompt
from tests.lvlm import tiny_lvlms

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
    """Prompts whose images sit between text: two images in one turn; three in one turn, two
    of them adjacent; three across a demo and the query. Answers of 2, 1 and 3 tokens."""
    pool = read_examples(tiny_world / "vqa" / "pool.jsonl")
    image = [example.image for example in pool[:5]]
    two = ICLPrompt(
        (),
        Turn(
            (
                TextPart("one"),
                ImagePart(image[0]),
                TextPart("two"),
                ImagePart(image[1]),
                TextPart(pool[0].text),
            )
        ),
    )
    three = ICLPrompt(
        (),
        Turn(
            (
                TextPart("one"),
                ImagePart(image[2]),
                TextPart("two"),
                ImagePart(image[3]),
                ImagePart(image[4]),
                TextPart(pool[1].text),
            )
        ),
    )
    across = ICLPrompt(
        (Turn((ImagePart(image[1]), TextPart("small"), ImagePart(image[0])), pool[2].answer),),
        Turn((TextPart("large"), ImagePart(image[3]), TextPart(pool[3].text))),
    )
    return [two, three, across], ["red blue", pool[1].answer, "one two three"]

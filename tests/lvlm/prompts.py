"""Interleaved prompts shared by the backend tests (tiny families and the built-in LVLM)."""

from __future__ import annotations

from collections.abc import Sequence

from drum.data import Example
from drum.lvlm.prompt import ICLPrompt, ImagePart, TextPart, Turn


def interleaved_prompts(pool: Sequence[Example]) -> tuple[list[ICLPrompt], list[str]]:
    """Prompts whose images sit between text: two images in one turn; three in one turn, two
    of them adjacent; three across a demo and the query. Answers of 2, 1 and 3 tokens."""
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

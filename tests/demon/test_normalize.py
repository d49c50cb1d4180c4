"""``drum.demon.normalize``: hand cases of each quirk, and the reference's own outputs."""

from __future__ import annotations

import doctest
import importlib
import json
from pathlib import Path

import pytest

from drum.demon import normalize

REFERENCE = json.loads((Path(__file__).parent / "fixtures" / "reference_outputs.json").read_text())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Image B", "image b"),
        ("  line one\nline\ttwo  ", "line one line two"),  # newlines and tabs become spaces
        # The punctuation rule looks at the whole original string: no "-" touches a space ...
        ("a-b c-d", "a b c d"),
        # ... but here one does, so every "-" is deleted, even the one in "c-d".
        ("a -b c-d", "a b cd"),
        ("red,blue", "red blue"),
        ("1,000 x-y", "1000 xy"),  # a digit-comma-digit anywhere deletes every mark
        ("5.", "5"),  # the broken lookbehind: a period after a digit goes too
        ("3.5 apples.", "3.5 apples"),  # one before a digit stays
        ("u.s.a.", "usa"),
        ("10:30", "10:30"),  # ':' and "'" are not punctuation here
        ("It's", "it's"),
        ("'single'", "single"),
        ('"double"', "double"),
        ("'yes'!", "yes'"),  # "!" became a space, so strip("'") meets the space, not the quote
        ("The Two Dogs", "the two dogs"),  # no article or number-word handling
        ("....", ""),
        ("", ""),
    ],
)
def test_hand_cases(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_only_the_first_32_periods_are_removed() -> None:
    # re.UNICODE (32) lands in sub's `count`.
    assert normalize("a" + "." * 40) == "a" + "." * 8
    assert normalize("." * 33) == "."
    # Periods before a digit are never removed, so they do not count towards the 32.
    assert normalize("1.5" + "." * 33) == "1.5."
    sentences = "x. " * 40
    assert normalize(sentences) == "x " * 32 + "x. " * 7 + "x."


def test_matches_the_reference_outputs() -> None:
    cases = REFERENCE["normalize"]
    assert len(cases) >= 30
    for case in cases:
        assert normalize(case["text"]) == case["value"], case["text"]


def test_docstring_examples() -> None:
    # ``drum.demon.normalize`` the attribute is the function; the module is in sys.modules.
    module = importlib.import_module("drum.demon.normalize")
    assert doctest.testmod(module).failed == 0

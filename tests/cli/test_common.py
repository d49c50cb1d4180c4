"""``drum.cli.common``: comma-separated integers, errors."""

from __future__ import annotations

import pytest
import typer

from drum.cli.common import csv_ints, fail


def test_csv_ints_and_fail_exit_with_status_2() -> None:
    assert csv_ints("0, 1,,2", "--seeds") == (0, 1, 2)
    with pytest.raises(typer.Exit) as raised:
        csv_ints("0,one", "--seeds")
    assert raised.value.exit_code == 2
    with pytest.raises(typer.Exit):
        fail("boom")

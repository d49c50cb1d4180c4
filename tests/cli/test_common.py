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


def test_read_or_fail_prints_each_distinct_warning_once(capsys: pytest.CaptureFixture[str]) -> None:
    import warnings

    from drum.cli.common import read_or_fail

    def read() -> int:
        for message in ("a.jsonl:2: unknown field(s)", "a.jsonl:2: unknown field(s)", "b"):
            warnings.warn(message, UserWarning, stacklevel=1)
        return 7

    assert read_or_fail(read, ValueError, UserWarning) == 7
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["warning: a.jsonl:2: unknown field(s)", "warning: b"]

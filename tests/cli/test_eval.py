"""``drum eval`` / ``drum experiments`` result tables: rich in a terminal, markdown in a pipe."""

from __future__ import annotations

import io
import sys

import pytest
from rich.table import Table

from drum.cli.common import show_tables


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_pipe_gets_the_markdown(capsys: pytest.CaptureFixture[str]) -> None:
    show_tables("| strategy | 1-shot |", Table("never shown"))
    assert capsys.readouterr().out == "| strategy | 1-shot |\n"


def test_a_terminal_gets_the_rich_table(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    table = Table("strategy", "1-shot")
    table.add_row("concat", "0.571 [.51,.63]")
    show_tables("| markdown |", table)
    assert "0.571 [.51,.63]" in terminal.getvalue()
    assert "| markdown |" not in terminal.getvalue()

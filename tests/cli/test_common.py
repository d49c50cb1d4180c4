"""``drum.cli.common``: config defaults, comma-separated integers, errors."""

from __future__ import annotations

import pytest
import typer

from drum.cli.common import ConfigDefault, csv_ints, default_of, fail


def test_default_of_reads_the_dataclass_field() -> None:
    from drum.builtin.world.generate import WorldConfig

    default = default_of("drum.builtin.world.generate:WorldConfig", "n_pool")
    assert isinstance(default, ConfigDefault)
    assert default() == WorldConfig().n_pool
    assert str(default) == str(WorldConfig().n_pool)  # what --help prints


def test_default_of_follows_a_nested_config_default() -> None:
    from drum.train.config import MiningConfig

    # MiningConfig's own feedback default (30 candidates), not FeedbackConfig's (50).
    assert default_of("drum.train.config:MiningConfig", "feedback.candidates")() == 30
    assert MiningConfig().feedback.candidates == 30


def test_default_of_writes_tuples_comma_separated() -> None:
    assert default_of("drum.eval.icl:ICLEvalConfig", "shots")() == "0,1,2,4,8"
    assert csv_ints(default_of("drum.eval.icl:ICLEvalConfig", "shots")(), "--shots") == (
        0,
        1,
        2,
        4,
        8,
    )


def test_default_of_a_field_without_default_is_an_error() -> None:
    with pytest.raises(TypeError, match="no default"):
        default_of("drum.eval.icl:ICLEvalConfig", "strategies")()


def test_csv_ints_and_fail_exit_with_status_2() -> None:
    assert csv_ints("0, 1,,2", "--seeds") == (0, 1, 2)
    with pytest.raises(typer.Exit) as raised:
        csv_ints("0,one", "--seeds")
    assert raised.value.exit_code == 2
    with pytest.raises(typer.Exit):
        fail("boom")

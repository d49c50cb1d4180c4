"""atomic_directory: a directory is replaced whole or not at all, even when killed midway."""

from __future__ import annotations

from pathlib import Path

import pytest

from drum.utils.io import atomic_directory, recover_directory, remove_directory
from tests.utils.kills import KillAt, Killed, count_steps, tree


def test_success_replaces_the_old_directory(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_directory(target) as staging:
        (staging / "new.txt").write_text("new")
        assert (target / "old.txt").is_file()  # untouched until the block succeeds
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_failure_keeps_the_old_directory_and_leaves_no_staging(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_directory(target) as staging:
        (staging / "half.txt").write_text("half")
        raise RuntimeError("crash")
    assert sorted(p.name for p in target.iterdir()) == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


# ------------------------------------------------------------- kills between the swap's steps
OLD = {"a.txt": "old a", "sub/b.txt": "old b"}
NEW = {"a.txt": "new a", "sub/c.txt": "new c"}


def _write(directory: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(text)


def _replace(target: Path, files: dict[str, str]) -> None:
    with atomic_directory(target) as staging:
        _write(staging, files)


def test_a_swap_takes_three_steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out"
    target.mkdir()
    _write(target, OLD)
    # Rename the old aside, rename the new in, delete the old.
    assert count_steps(monkeypatch, lambda: _replace(target, NEW)) == 3


@pytest.mark.parametrize("step", [1, 2, 3])
def test_a_kill_at_any_step_leaves_old_or_new_whole_and_the_next_run_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: int
) -> None:
    target = tmp_path / "out"
    target.mkdir()
    _write(target, OLD)
    kill = KillAt(monkeypatch, step)
    with pytest.raises(Killed):
        _replace(target, NEW)
    kill.undo()
    # Between the two renames (step 2) nothing is at the path until the next run recovers.
    assert not target.exists() if step == 2 else tree(target) in (OLD, NEW)
    recover_directory(target)
    assert tree(target) == (NEW if step == 3 else OLD)
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging, old copy or trash
    _replace(target, {"x.txt": "next"})
    assert tree(target) == {"x.txt": "next"}
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_kill_inside_the_block_leaves_the_old_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out"
    target.mkdir()
    _write(target, OLD)
    with pytest.raises(Killed), atomic_directory(target) as staging:
        _write(staging, {"half.txt": "half"})
        KillAt(monkeypatch, 1)  # the clean-up of the staging directory dies too
        raise Killed("killed while writing")
    monkeypatch.undo()
    assert tree(target) == OLD
    assert len(list(tmp_path.iterdir())) == 2  # the staging directory is left behind
    _replace(target, NEW)  # which the next call removes
    assert tree(target) == NEW and [p.name for p in tmp_path.iterdir()] == ["out"]


@pytest.mark.parametrize("step", [1, 2])
def test_remove_directory_never_leaves_a_half_deleted_directory_at_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: int
) -> None:
    target = tmp_path / "out"
    target.mkdir()
    _write(target, OLD)
    kill = KillAt(monkeypatch, step)
    with pytest.raises(Killed):
        remove_directory(target)
    kill.undo()
    assert tree(target) == OLD if step == 1 else not target.exists()
    recover_directory(target)
    assert list(tmp_path.iterdir()) == ([target] if step == 1 else [])


def test_recovery_touches_only_the_paths_own_leftovers(tmp_path: Path) -> None:
    for name in (".out.checkpoint", ".other.0123abcd.staging", ".out.notatoken.trash", "out2"):
        (tmp_path / name).mkdir()
    (tmp_path / ".out.0123abcd.staging").mkdir()
    recover_directory(tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".other.0123abcd.staging",
        ".out.checkpoint",
        ".out.notatoken.trash",
        "out2",
    ]

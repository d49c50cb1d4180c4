"""``drum.demon.lock``: one DEMON run per output folder. A second run is refused at once, naming
the holder; a killed holder's lock is taken over; the ranks of one run share the folder."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from drum.demon.format import read_demon_root
from drum.demon.lock import LOCK_FILE, OutputLockedError, output_lock
from drum.demon.predictions import predictions_path
from drum.demon.run import evaluate_demon, generate_predictions
from drum.testing import FakeLVLM
from tests.demon.test_run import reply
from tests.demon.test_sharded import LoneRank

REPO = Path(__file__).resolve().parents[2]
HOLD = (
    "import sys\n"
    "from drum.demon.lock import output_lock\n"
    "with output_lock(sys.argv[1]):\n"
    "    print('held', flush=True)\n"
    "    sys.stdin.read()\n"
)


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding ``tmp_path / "out"``'s lock until its stdin closes."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path / "out")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None and process.stdout.readline() == "held\n"
    yield process
    if process.poll() is None:
        process.kill()
    process.wait()


def test_a_second_run_is_refused_naming_the_holder_and_writes_nothing(
    scoring_root: Path, tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    tasks = read_demon_root(scoring_root)
    out = tmp_path / "out"
    lvlm = FakeLVLM(reply=reply)
    with pytest.raises(OutputLockedError) as error:
        evaluate_demon(lvlm, tasks, out, progress=False)
    message = str(error.value)
    assert f"pid {holder.pid} on host {socket.gethostname()}, started 20" in message
    assert lvlm.calls == 0
    assert not any(predictions_path(out, task).exists() for task in tasks)
    # Once the holder ends, the folder is free and its lock file gone.
    assert holder.stdin is not None
    holder.stdin.close()
    assert holder.wait() == 0
    assert not (out / LOCK_FILE).exists()
    evaluate_demon(lvlm, tasks, out, progress=False)
    assert all(predictions_path(out, task).exists() for task in tasks)
    assert not (out / LOCK_FILE).exists()


def test_a_killed_runs_lock_is_taken_over(
    scoring_root: Path, tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    out = tmp_path / "out"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    stale = json.loads((out / LOCK_FILE).read_text())
    assert stale["pid"] == holder.pid  # left behind with a dead pid
    scores = evaluate_demon(
        FakeLVLM(reply=reply), read_demon_root(scoring_root), out, progress=False
    )
    assert scores["tasks"]["TQA"]["score"] == 0.5
    assert not (out / LOCK_FILE).exists()


def test_the_ranks_of_one_run_share_the_folder(
    scoring_root: Path, tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    # The holder stands for rank 0 of the run; rank 1 writes its part beside it.
    tasks = read_demon_root(scoring_root, ["TQA"])
    rank1 = FakeLVLM(reply=reply)
    generate_predictions(
        rank1, tasks, tmp_path / "out", batch_size=1, progress=False, context=LoneRank(1, 2)
    )
    assert len(rank1.generated) == 1


def test_the_lock_nests_in_one_process(tmp_path: Path) -> None:
    with output_lock(tmp_path), output_lock(tmp_path / "."):
        assert (tmp_path / LOCK_FILE).is_file()
    assert not (tmp_path / LOCK_FILE).exists()
    with output_lock(tmp_path):  # and can be taken again
        pass

"""``run_icl_eval`` under 2 gloo processes: every metric value as one process computes it,
and only rank 0 writes the result files."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

import drum.eval.icl as icl
import drum.eval.report as report
from drum.builtin.world.tasks import world_tasks
from drum.embed.cache import EmbeddingCache
from drum.embed.hf import HFDualEncoder
from drum.eval.icl import ICLEvalConfig, run_icl_eval
from drum.lvlm.hf import HFLVLM
from drum.testing import spawn_ranks
from drum.utils.distributed import DistContext

# 5 queries in batches of 2: 3 batches, 1 for rank 0 and 2 for rank 1 (an uneven split).
CONFIG = ICLEvalConfig(
    strategies=("concat",),
    shots=(0, 1),
    batch_size=2,
    max_queries=5,
    bootstrap_resamples=50,
    corpus_bootstrap_resamples=20,
    corpus_ci="fixed_statistics",
)
TASKS = ("caption",)  # corpus metrics (CIDEr-D) and mean-of-examples ones


def _evaluate(world: Path, clip: Path, lvlm: Path, out: Path, cache: Path | None) -> dict:
    tasks = world_tasks(world)
    return run_icl_eval(
        [dataclasses.replace(tasks[name], max_new_tokens=4) for name in TASKS],
        HFLVLM(lvlm),
        CONFIG,
        {"default": HFDualEncoder(clip)},
        out,
        EmbeddingCache(cache) if cache is not None else None,
        progress=False,
        context=DistContext.from_env(),
    )


def _rank(world: Path, clip: Path, lvlm: Path, out: Path, record: Path) -> None:
    writes: list[str] = []
    write_json, write_records = icl.atomic_write_json, icl.write_query_records

    def spy_write(path: object, obj: object) -> None:
        writes.append(str(path))
        write_json(path, obj)

    def spy_records(path: Path, records: list) -> None:
        writes.append(f"records:{path}")
        write_records(path, records)

    def spy_render(path: Path) -> None:  # recorded, not drawn: the plot is not under test
        writes.append(f"report:{path}")

    # In this process only: every file run_icl_eval writes goes through these three.
    icl.atomic_write_json, icl.write_query_records = spy_write, spy_records
    report.render_report = spy_render
    results = _evaluate(world, clip, lvlm, out, out.parent / "cache")
    rank = DistContext.from_env().rank
    (record / f"rank-{rank}.json").write_text(
        json.dumps({"writes": writes, "rows": results["rows"]})
    )


def _metrics(rows: list[dict]) -> list[tuple]:
    return [
        (r["task"], r["strategy"], r["shots"], r["seed"], r["n_queries"], r["truncated_prompts"],
         json.dumps(r["metric"], sort_keys=True))
        for r in rows
    ]  # fmt: skip


@pytest.mark.slow
def test_two_ranks_give_every_metric_of_one_process_and_only_rank_0_writes(
    tiny_world: Path,
    tiny_clip_dir: Path,
    tiny_llava_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(report, "render_report", lambda path: None)
    # Both runs through an embedding cache (it embeds distinct keys only, so its float32
    # rounding of the similarities can differ from a cacheless run's).
    # One thread, as each rank runs (spawn_ranks): float32 sums of another thread count may
    # round the similarities differently, and the suite's thread count depends on what ran first.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one = _evaluate(
            tiny_world, tiny_clip_dir, tiny_llava_dir, tmp_path / "one", tmp_path / "c1"
        )
    finally:
        torch.set_num_threads(threads)
    assert len(one["rows"]) == 2 and all(r["n_queries"] == 5 for r in one["rows"])
    out, record = tmp_path / "two" / "out", tmp_path / "record"
    record.mkdir()
    spawn_ranks(_rank, 2, tiny_world, tiny_clip_dir, tiny_llava_dir, out, record)
    ranks = [json.loads((record / f"rank-{r}.json").read_text()) for r in range(2)]
    assert ranks[1]["writes"] == []
    results = out / icl.RESULTS_FILE
    queries = out / icl.QUERIES_FILE
    assert ranks[0]["writes"] == [f"records:{queries}", str(results), f"report:{results}"]
    # The per-query records (replies, per-query scores) too are the one-process ones.
    assert queries.read_bytes() == (tmp_path / "one" / icl.QUERIES_FILE).read_bytes()
    written = json.loads((out / icl.RESULTS_FILE).read_text())
    for rows in (ranks[0]["rows"], ranks[1]["rows"], written["rows"]):
        assert _metrics(rows) == _metrics(one["rows"])  # every value identical, not close

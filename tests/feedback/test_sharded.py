"""``score_feedback_sharded``: 2 gloo processes resume an interrupted run and end with the
scores, the ranked lists and the ``feedback.jsonl`` of one process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drum.data import read_examples
from drum.data.example import Example
from drum.feedback import FeedbackCache, FeedbackConfig, score_feedback
from drum.feedback.cache import FeedbackRecord
from drum.feedback.sharded import score_feedback_sharded
from drum.lvlm.hf import HFLVLM
from drum.testing import SpyLVLM, spawn_ranks
from drum.utils.distributed import DistContext, block_bounds, part_path

# 6 queries x (zero-shot + 3 candidates) = 24 prompts = 3 flush chunks of 8 (2 batches each).
CONFIG = FeedbackConfig(candidates=3, batch_size=4, flush_every=8)


def _world(world: Path) -> tuple[list[Example], dict[str, list[Example]]]:
    pool = read_examples(world / "vqa" / "pool.jsonl", verify_images=False)
    queries = pool[:6]
    return queries, {q.id: pool[10 + 3 * i : 13 + 3 * i] for i, q in enumerate(queries)}


def _rank(world: Path, lvlm_dir: Path, out: Path) -> None:
    context = DistContext.from_env()
    queries, candidates = _world(world)
    spy = SpyLVLM(HFLVLM(lvlm_dir))
    feedback = score_feedback_sharded(
        spy,
        queries,
        candidates,
        FeedbackCache(out / "feedback.jsonl"),
        CONFIG,
        None,
        False,
        context,
    )
    record = {
        "scored": len(spy.scored),
        "feedback": [[f.query_id, list(f.scores), f.zero_shot, f.ranked_order()] for f in feedback],
    }
    (out / f"rank-{context.rank}.json").write_text(json.dumps(record))


def test_one_process_is_score_feedback(
    tiny_world: Path, tiny_llava_dir: Path, tmp_path: Path
) -> None:
    queries, candidates = _world(tiny_world)
    lvlm = HFLVLM(tiny_llava_dir)
    one = score_feedback(lvlm, queries, candidates, FeedbackCache(tmp_path / "a.jsonl"), CONFIG)
    same = score_feedback_sharded(
        lvlm, queries, candidates, FeedbackCache(tmp_path / "b.jsonl"), CONFIG, progress=False
    )
    assert one == same
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert not (tmp_path / "b.jsonl.parts").exists()


@pytest.mark.slow
def test_two_ranks_resume_from_a_part_and_match_one_process(
    tiny_world: Path, tiny_llava_dir: Path, tmp_path: Path
) -> None:
    queries, candidates = _world(tiny_world)
    one_path = tmp_path / "one" / "feedback.jsonl"
    one = score_feedback(
        HFLVLM(tiny_llava_dir), queries, candidates, FeedbackCache(one_path), CONFIG
    )
    records = [json.loads(line) for line in one_path.read_text().splitlines()]
    assert len(records) == 24
    # An interrupted 2-rank run: rank 1 (chunks 1 and 2) saved chunk 1 and was killed; rank 0
    # saved nothing. The rerun must score chunks 0 and 2 only, one per rank.
    assert block_bounds(24, 8, 1, 2) == (8, 24)
    out = tmp_path / "two"
    saved = FeedbackCache(part_path(out / "feedback.jsonl", 1, 2, "jsonl"))
    reference = FeedbackCache(one_path)
    keys = [(r["model"], r["query"], r["candidate"], r["answer"]) for r in records]
    saved.add(FeedbackRecord(key, reference.get(key)) for key in keys[8:16])  # type: ignore[arg-type]

    spawn_ranks(_rank, 2, tiny_world, tiny_llava_dir, out)

    ranks = [json.loads((out / f"rank-{r}.json").read_text()) for r in range(2)]
    assert [rank["scored"] for rank in ranks] == [8, 8]  # nothing scored twice, nothing lost
    assert ranks[0]["feedback"] == ranks[1]["feedback"]
    for item, (query_id, scores, zero, order) in zip(one, ranks[0]["feedback"], strict=True):
        assert item.query_id == query_id
        assert max(abs(a - b) for a, b in zip(item.scores, scores, strict=True)) <= 1e-6
        assert abs(item.zero_shot - zero) <= 1e-6
        assert item.ranked_order() == order
    # Merged in scoring order: the file one process writes; the parts are gone.
    assert (out / "feedback.jsonl").read_bytes() == one_path.read_bytes()
    assert not (out / "feedback.jsonl.parts").exists()

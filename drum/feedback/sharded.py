"""LVLM feedback scoring split across the ranks of a ``torchrun`` / ``accelerate launch`` job.

The LVLM calls are where mining spends its time, so they are what is sharded. With one
process this is ``score_feedback`` on the cache, unchanged. With ``N``:

1. every rank loads the merged cache ``feedback.jsonl`` and every per-rank part left by an
   earlier, interrupted run (``feedback.jsonl.parts/rank-<r>-of-<M>.jsonl``, any ``M``) and
   lists the prompts none of them holds, in the order ``score_feedback`` would score them
   (a dry run of ``score_feedback`` on a view that records its misses); the ranks then
   compare digests of that list (ranks given different queries or candidates are an error,
   not a silent loss) which is also the barrier that keeps anyone from appending to a part
   another rank is still reading;
2. that list is cut into the scorer's own chunks of ``FeedbackConfig.flush_every`` prompts
   and the **chunks** are split contiguously across ranks (``block_bounds``): each rank makes
   exactly the ``LVLM.score`` calls one process makes for those prompts (same prompts, same
   order, same batches, whatever batching or length bucketing the LVLM does inside one call),
   so its scores are bit for bit the single-process ones;
3. each rank runs ``score_feedback`` on a view in which only its own prompts are missing;
   the new scores go, chunk by chunk, to its own part (a ``FeedbackCache``: locked, fsynced
   appends; a torn last line is dropped on load), so a killed rank keeps every chunk it
   finished;
4. after a barrier every rank reads all parts and builds the feedback from the cache plus
   the parts (no LVLM call); after another barrier rank 0 appends the new scores to
   ``feedback.jsonl`` in the order of step 1 (= the order one process appends them: the file
   is byte-identical to a single-process run's when no run was interrupted) and deletes the
   parts; a last barrier, and every rank returns the same feedback.

Resume: a rerun of the same command (any ``N``) scores only what neither the cache nor any
part holds: nothing is scored twice and nothing already saved is lost. Load balance: the unit
is one flush chunk (512 prompts by default); with many GPUs and few prompts, a smaller
``flush_every`` (a multiple of ``batch_size``) spreads the work more evenly.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from drum.data.example import Example
from drum.feedback.cache import FeedbackCache, FeedbackKey, FeedbackRecord
from drum.feedback.scorer import FeedbackConfig, QueryFeedback, score_feedback, scoring_order
from drum.lvlm.base import LVLM, ScoreResult
from drum.lvlm.prompt import PromptTemplate
from drum.utils.distributed import DistContext, block_bounds, parts_dir
from drum.utils.io import remove_directory

# Returned for a prompt another rank scores: it stops ``score_feedback`` from scoring it.
_ELSEWHERE = ScoreResult(0.0, 0.0, 0)


class _View:
    """What ``score_feedback`` sees as its cache: ``known`` scores, and for a key outside
    ``own`` a placeholder (so only ``own`` keys are scored); misses are recorded in order;
    new records go to ``sink`` (this rank's part) or are refused."""

    def __init__(
        self,
        known: Mapping[FeedbackKey, ScoreResult],
        own: set[FeedbackKey] | None = None,
        sink: FeedbackCache | None = None,
    ) -> None:
        self.known = known
        self.own = own
        self.sink = sink
        self.missing: dict[FeedbackKey, None] = {}

    def get(self, key: FeedbackKey) -> ScoreResult | None:
        score = self.known.get(key)
        if score is not None:
            return score
        self.missing.setdefault(key)
        return None if self.own is not None and key in self.own else _ELSEWHERE

    def add(self, records: Iterable[FeedbackRecord]) -> None:
        if self.sink is None:
            raise RuntimeError("feedback scoring asked to score a prompt already merged")
        self.sink.add(records)


def _digest(keys: Sequence[FeedbackKey]) -> str:
    """SHA-256 of ``keys`` in order: what every rank must agree on before scoring."""
    digest = hashlib.sha256()
    for key in keys:
        digest.update(json.dumps(key).encode() + b"\n")
    return digest.hexdigest()


def _load_parts(path: Path) -> dict[FeedbackKey, ScoreResult]:
    """Every score held by a part of ``path`` (of any world size), parts in name order."""
    scores: dict[FeedbackKey, ScoreResult] = {}
    folder = parts_dir(path)
    for part in sorted(folder.glob("rank-*-of-*.jsonl")) if folder.is_dir() else []:
        for key, score in FeedbackCache(part).items():
            scores.setdefault(key, score)
    return scores


def score_feedback_sharded(
    lvlm: LVLM,
    queries: Sequence[Example],
    candidates: Mapping[str, Sequence[Example]],
    cache: FeedbackCache,
    config: FeedbackConfig | None = None,
    template: PromptTemplate | None = None,
    progress: bool = True,
    context: DistContext | None = None,
) -> list[QueryFeedback]:
    """``score_feedback`` with its LVLM calls split across ``context``'s ranks (see the
    module docstring); every rank returns the feedback one process returns.

    With several ranks the merged scores are read from and written to ``cache.path``
    (rank 0 writes); the ``cache`` object itself is not updated there, so a caller that
    reuses it across calls should pass a fresh ``FeedbackCache(path)`` or rely on this
    function, which always reloads the file."""
    context = context or DistContext()
    if not context.distributed:
        return score_feedback(lvlm, queries, candidates, cache, config, template, progress)
    config = config or FeedbackConfig()
    path = cache.path
    merged = FeedbackCache(path)
    known = dict(merged.items())
    probe = _View(known)
    score_feedback(lvlm, queries, candidates, probe, config, template, progress=False)  # type: ignore[arg-type]
    unmerged = scoring_order(list(probe.missing))  # not in feedback.jsonl, in scoring order
    saved = _load_parts(path)
    todo = [key for key in unmerged if key not in saved]
    # Also the barrier after which parts are appended to: every rank has read them by then.
    digests = context.all_gather_object(_digest(todo))
    if len(set(digests)) != 1:
        raise RuntimeError(
            f"ranks disagree on the prompts to score ({len(todo)} here): their queries or "
            "candidates differ; every rank must score the same lists"
        )

    start, stop = block_bounds(len(todo), config.flush_every, context.rank, context.world_size)
    own = _View(
        {**known, **saved}, set(todo[start:stop]), FeedbackCache(context.part_path(path, "jsonl"))
    )
    score_feedback(lvlm, queries, candidates, own, config, template, progress)  # type: ignore[arg-type]
    context.barrier()  # every part is complete

    saved = _load_parts(path)
    lost = [key for key in unmerged if key not in saved]
    if lost:
        raise RuntimeError(f"{parts_dir(path)}: {len(lost)} scores missing after scoring")
    full = _View({**known, **saved})
    feedback = score_feedback(lvlm, queries, candidates, full, config, template, False)  # type: ignore[arg-type]
    context.barrier()  # every rank has read the parts before rank 0 deletes them
    if context.is_main:
        merged.add(FeedbackRecord(key, saved[key]) for key in unmerged)
        remove_directory(parts_dir(path))
    context.barrier()  # feedback.jsonl holds every score
    return feedback

"""LVLM feedback: how much one candidate demonstration raises the likelihood of the answer.

For a query ``q`` with gold answer ``a`` and a candidate demonstration ``c``::

    s(c) = log p(a | c, q) - log p(a | q)

length-normalised by default (both terms are per-token means), as DRUM re-ranks candidates by
it. The zero-shot term is the same for every candidate of a query, so it never changes the
ranking; it is kept so that reports can show how far above zero-shot each candidate lifts the
model.

Batched: every (query, candidate) prompt not yet in the cache goes through ``LVLM.score`` in
batches; the zero-shot term is computed once per query; duplicates and cached scores are never
scored again. The prompts are sent in ``scoring_order``: those of one candidate demonstration
next to each other, so that they land in the same ``LVLM.score`` call, where ``HFLVLM``
computes the demonstration's key/value prefix once for all of them (``drum.lvlm.prefix``) and
a vLLM server's prefix caching does the same; the backend caches image encodings, so each
image is encoded once either way. The order changes which prompts share a call, not what is
scored or cached.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tqdm.auto import tqdm

from drum.data.example import Example, require_answered
from drum.feedback.cache import FeedbackCache, FeedbackKey, FeedbackRecord
from drum.lvlm.base import LVLM, ScoreResult
from drum.lvlm.prompt import PromptTemplate, build_prompt


@dataclass(frozen=True)
class FeedbackConfig:
    """How candidates are scored.

    Attributes:
        candidates: candidates per query (``M``; UDR uses 50).
        batch_size: prompts per forward pass.
        flush_every: prompts scored between two appends to the on-disk cache.
        length_normalised: per-token mean log-likelihoods (else sums).
    """

    candidates: int = 50
    batch_size: int = 32
    flush_every: int = 512
    length_normalised: bool = True

    def __post_init__(self) -> None:
        for name in ("candidates", "batch_size", "flush_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"FeedbackConfig.{name} must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class QueryFeedback:
    """One query's candidates (in retrieval order) and their feedback scores."""

    query_id: str
    candidate_ids: tuple[str, ...]
    scores: tuple[float, ...]  # s(c), aligned with candidate_ids
    zero_shot: float  # log p(a | q)

    def ranked_order(self) -> list[int]:
        """Candidate positions from most to least helpful (ties keep retrieval order)."""
        return sorted(range(len(self.scores)), key=lambda i: -self.scores[i])


def cache_model_key(lvlm: LVLM, template: PromptTemplate | None = None) -> str:
    """The model part of the cache keys: the LVLM's fingerprint, plus a digest of the prompt
    template unless it is the default one.

    The template rewrites every prompt, so a score under another template is another score;
    without it in the key a cache filled under one template would silently answer for another.
    The default template keeps the bare fingerprint.
    """
    template = template or PromptTemplate()
    if template == PromptTemplate():
        return lvlm.fingerprint
    phrasing = json.dumps([template.user, template.answer]).encode("utf-8")
    return f"{lvlm.fingerprint}+template-{hashlib.sha256(phrasing).hexdigest()[:16]}"


def _value(score: ScoreResult, length_normalised: bool) -> float:
    return score.mean if length_normalised else score.sum


def scoring_order(keys: Sequence[FeedbackKey]) -> list[FeedbackKey]:
    """``keys`` with those of one candidate next to each other: candidates (and the zero-shot
    prompts, candidate None) in order of first appearance, each one's keys in their order."""
    groups: dict[str | None, list[FeedbackKey]] = {}
    for key in keys:
        groups.setdefault(key[2], []).append(key)
    return [key for group in groups.values() for key in group]


def score_feedback(
    lvlm: LVLM,
    queries: Sequence[Example],
    candidates: Mapping[str, Sequence[Example]],
    cache: FeedbackCache | None = None,
    config: FeedbackConfig | None = None,
    template: PromptTemplate | None = None,
    progress: bool = True,
) -> list[QueryFeedback]:
    """Feedback scores of ``candidates[query.id]`` for every query (one-shot prompts).

    Scores found in ``cache`` are reused; new ones are appended to it every
    ``config.flush_every`` prompts (in ``scoring_order``), so a killed run resumes where it
    stopped.
    """
    config = config or FeedbackConfig()
    why = "feedback scores log p(query answer | demonstration, query)"
    require_answered(queries, "queries", why)
    require_answered(
        {c.id: c for q in queries for c in candidates.get(q.id, ())}.values(), "candidates", why
    )
    model = cache_model_key(lvlm, template)
    known: dict[FeedbackKey, ScoreResult] = {}
    pending: dict[FeedbackKey, tuple[tuple[Example, ...], Example]] = {}
    for query in queries:
        if query.id not in candidates:
            raise KeyError(f"no candidates given for query {query.id!r}")
        jobs = [(None, ())] + [(c.id, (c,)) for c in candidates[query.id]]
        for candidate_id, demos in jobs:
            key = (model, query.id, candidate_id, query.answer)
            cached = cache.get(key) if cache is not None else None
            if cached is not None:
                known[key] = cached
            elif key not in pending:
                pending[key] = (demos, query)

    keys = scoring_order(list(pending))
    bar = tqdm(total=len(keys), desc="LVLM feedback", unit="prompt", disable=not progress)
    for start in range(0, len(keys), config.flush_every):
        chunk = keys[start : start + config.flush_every]
        prompts = [build_prompt(*pending[key], template=template) for key in chunk]
        answers = [pending[key][1].answer for key in chunk]
        results = lvlm.score(prompts, answers, batch_size=config.batch_size)
        records = [FeedbackRecord(k, r) for k, r in zip(chunk, results, strict=True)]
        if cache is not None:
            cache.add(records)
        known.update((record.key, record.score) for record in records)
        bar.update(len(chunk))
    bar.close()

    feedback = []
    for query in queries:
        zero = _value(known[(model, query.id, None, query.answer)], config.length_normalised)
        ids = tuple(c.id for c in candidates[query.id])
        scores = tuple(
            _value(known[(model, query.id, cid, query.answer)], config.length_normalised) - zero
            for cid in ids
        )
        feedback.append(QueryFeedback(query.id, ids, scores, zero))
    return feedback

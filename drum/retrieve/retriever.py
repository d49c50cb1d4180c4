"""``DemonstrationRetriever``: per query, the k pool examples to show, in prompt order.

It is also a library call for other evaluation harnesses: ``retriever.sample(n, query)``
returns ``n`` demonstration ``Example`` objects, as lm-evaluation-harness samplers do.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from drum.data.example import Example
from drum.data.images import image_key
from drum.embed.base import Embedder
from drum.embed.cache import EmbeddingCache
from drum.embed.example_embeddings import ExampleEmbeddings
from drum.index import IndexConfig, VectorIndex
from drum.retrieve.strategies import RetrievalConfig, pool_vectors, query_vectors


@dataclass(frozen=True)
class Retrieval:
    """The demonstrations chosen for one query, in prompt order, with their scores."""

    query_id: str
    demo_ids: tuple[str, ...]
    scores: tuple[float, ...]


class PoolExclusions:
    """The pool rows each query must not see (``RetrievalConfig.exclude_self``): the pool
    example with the query's id, and every pool example with identical content (same text,
    same image bytes).

    A query drawn from the pool therefore has at most ``len(pool) - 1`` demonstrations to
    choose from, fewer when the pool holds copies of it. Content keys hash the image files,
    each file once for the life of this object (the pool's lazily, at the first query; a
    query's when it is first asked about), so one object shared by every retriever over the
    same pool (``DemonstrationRetriever(exclusions=...)``) hashes each image once.

    Example::

        exclusions = PoolExclusions(pool)
        exclusions.rows(pool[3])  # {3}, plus the rows of any exact copies of pool[3]
    """

    def __init__(self, pool: Sequence[Example]) -> None:
        self.pool = list(pool)
        self._row_of = {example.id: row for row, example in enumerate(self.pool)}
        self._keys: dict[tuple[str, ...], list[int]] | None = None
        self._image_keys: dict[Path, str] = {}  # image path -> its content key

    def _content_key(self, example: Example) -> tuple[str, ...]:
        for image in example.images:
            if image not in self._image_keys:
                self._image_keys[image] = image_key(image)
        return (example.text, *(self._image_keys[image] for image in example.images))

    def rows(self, query: Example) -> set[int]:
        """Pool rows ``query`` must not see."""
        if self._keys is None:
            self._keys = {}
            for row, example in enumerate(self.pool):
                self._keys.setdefault(self._content_key(example), []).append(row)
        rows = set(self._keys.get(self._content_key(query), []))
        if query.id in self._row_of:
            rows.add(self._row_of[query.id])
        return rows


def check_available(
    pool: Sequence[Example], queries: Sequence[Example], excluded: Sequence[set[int]], k: int
) -> None:
    """``ValueError`` naming the first query whose pool, less its ``excluded`` rows, holds
    fewer than ``k`` examples."""
    for query, rows in zip(queries, excluded, strict=True):
        available = len(pool) - len(rows)
        if k > available:
            raise ValueError(
                f"query {query.id!r}: k={k} demonstrations requested, but only {available} of "
                f"the pool's {len(pool)} examples remain after excluding the query itself and "
                f"examples of identical content ({len(rows)} excluded)"
            )


def _stable_seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little")


class DemonstrationRetriever:
    """Chooses demonstrations from ``pool`` for queries, by ``config.strategy``.

    Args:
        pool: the demonstration pool (embeddings needed only for similarity strategies).
        config: strategy (a name or a ``StrategySpec``), k, order, weights, exclusions.
        index_config: the FAISS index over pool vectors (exact inner product by default).
        embedder: computes query embeddings that ``retrieve`` is not given; it should be the
            embedder of ``pool`` (the one the strategy spec names).
        cache: the embedding cache for those query embeddings.
        exclusions: the ``PoolExclusions`` of this very pool, to share its image hashes with
            other retrievers over it (default: its own).

    Example::

        pool = ExampleEmbeddings.compute(read_examples("world/vqa/pool.jsonl"), embedder, cache)
        retriever = DemonstrationRetriever(pool, RetrievalConfig("concat", k=4), embedder=embedder)
        [retrieval] = retriever.retrieve([query])
        retrieval.demo_ids  # 4 pool ids, most similar last
    """

    def __init__(
        self,
        pool: ExampleEmbeddings | Sequence[Example],
        config: RetrievalConfig,
        index_config: IndexConfig | None = None,
        embedder: Embedder | None = None,
        cache: EmbeddingCache | None = None,
        exclusions: PoolExclusions | None = None,
    ) -> None:
        self.config = config
        self.embedder, self.cache = embedder, cache
        if isinstance(pool, ExampleEmbeddings):
            self.pool_embeddings: ExampleEmbeddings | None = pool
            self.pool = pool.examples
        else:
            if config.uses_similarity:
                raise ValueError(
                    f"strategy {config.spec.name!r} needs ExampleEmbeddings for the pool"
                )
            self.pool_embeddings, self.pool = None, list(pool)
        if config.k > len(self.pool):
            raise ValueError(f"k={config.k} exceeds the pool size {len(self.pool)}")
        if not self.pool:
            raise ValueError("the demonstration pool is empty")
        self.by_id = {example.id: example for example in self.pool}
        self.row_of = {example.id: row for row, example in enumerate(self.pool)}
        if exclusions is not None and [e.id for e in exclusions.pool] != list(self.row_of):
            raise ValueError("exclusions were built for another pool")
        self._exclusions = exclusions or PoolExclusions(self.pool)
        self.index: VectorIndex | None = None
        if config.uses_similarity:
            assert self.pool_embeddings is not None
            pool_side = self.pool_embeddings
            vectors = pool_vectors(config, pool_side.image, pool_side.text, pool_side.joint)
            self.index = VectorIndex(vectors.shape[1], index_config or IndexConfig())
            self.index.add(vectors, [example.id for example in self.pool])
        # ``fixed`` shows the first k of one seeded permutation of the pool to every query.
        self._fixed_order = [
            int(i) for i in np.random.default_rng(config.seed).permutation(len(self.pool))
        ]

    def _excluded(self, query: Example) -> set[int]:
        """Pool rows a query must not see: itself, or an example with identical content."""
        if not self.config.exclude_self:
            return set()
        return self._exclusions.rows(query)

    def retrieve(
        self,
        queries: Sequence[Example],
        query_embeddings: ExampleEmbeddings | None = None,
        k: int | None = None,
    ) -> list[Retrieval]:
        """Demonstrations for every query, exactly ``k`` (default ``config.k``) each.

        Similarity strategies need ``query_embeddings``, or an ``embedder`` given at
        construction to compute them. A query left with fewer than ``k`` pool examples once
        itself and its identical copies are excluded is a ``ValueError`` (naming it, ``k`` and
        how many remain), raised before any query is embedded or searched.
        """
        k = self.config.k if k is None else k
        if not 0 <= k <= len(self.pool):
            raise ValueError(f"k={k} must be between 0 and the pool size {len(self.pool)}")
        excluded = [self._excluded(query) for query in queries]
        check_available(self.pool, queries, excluded, k)
        if self.config.uses_similarity:
            if query_embeddings is None:
                if self.embedder is None:
                    raise ValueError(
                        f"strategy {self.config.spec.name!r} needs query embeddings or an embedder"
                    )
                query_embeddings = ExampleEmbeddings.compute(
                    queries, self.embedder, self.cache, parts=self.config.spec.parts
                )
            ranked = self._search(queries, query_embeddings, k, excluded)
        else:
            ranked = [
                self._unranked(query, k, skip)
                for query, skip in zip(queries, excluded, strict=True)
            ]
        return [
            self._ordered(query, rows_scores)
            for query, rows_scores in zip(queries, ranked, strict=True)
        ]

    def _search(
        self,
        queries: Sequence[Example],
        query_embeddings: ExampleEmbeddings,
        k: int,
        excluded: Sequence[set[int]],
    ) -> list[list[tuple[int, float]]]:
        assert self.index is not None
        vectors = query_vectors(
            self.config, query_embeddings.image, query_embeddings.text, query_embeddings.joint
        )
        # Search a little deeper than k so that excluded rows can be dropped afterwards.
        depth = min(len(self.pool), k + max((len(e) for e in excluded), default=0))
        if depth == 0:
            return [[] for _ in queries]
        scores, labels = self.index.search(vectors, depth)
        results = []
        for query, row_scores, row_labels, skip in zip(
            queries, scores, labels, excluded, strict=True
        ):
            kept = [
                (int(label), float(score))
                for score, label in zip(row_scores, row_labels, strict=True)
                if label >= 0 and int(label) not in skip
            ]
            if len(kept) < k:
                # Only an approximate index returns fewer hits than the pool has to give.
                raise ValueError(
                    f"query {query.id!r}: the index found {len(kept)} of the k={k} "
                    f"demonstrations ({len(self.pool) - len(skip)} remain after exclusions); "
                    "search an approximate index deeper (IndexConfig nprobe / ef_search)"
                )
            results.append(kept[:k])
        return results

    def _unranked(self, query: Example, k: int, skip: set[int]) -> list[tuple[int, float]]:
        if self.config.spec.combine == "fixed":
            # When the query is one of the fixed demos, the next row of the permutation stands in.
            rows = [row for row in self._fixed_order if row not in skip][:k]
        else:
            rng = np.random.default_rng(_stable_seed(self.config.seed, query.id))
            candidates = np.array([r for r in range(len(self.pool)) if r not in skip])
            rows = [int(r) for r in rng.choice(candidates, size=k, replace=False)]
        return [(row, 0.0) for row in rows]

    def _ordered(self, query: Example, rows_scores: list[tuple[int, float]]) -> Retrieval:
        # rows_scores arrive best first (similarity) or in draw order (random / fixed).
        order = self.config.order
        if order == "similar_last":
            rows_scores = rows_scores[::-1]
        elif order == "random":
            rng = np.random.default_rng(_stable_seed(self.config.seed, "order", query.id))
            rows_scores = [rows_scores[i] for i in rng.permutation(len(rows_scores))]
        return Retrieval(
            query_id=query.id,
            demo_ids=tuple(self.pool[row].id for row, _ in rows_scores),
            scores=tuple(score for _, score in rows_scores),
        )

    def sample(
        self, n: int, query: Example, query_embeddings: ExampleEmbeddings | None = None
    ) -> list[Example]:
        """``n`` demonstrations for ``query`` in prompt order (the sampler interface)."""
        (retrieval,) = self.retrieve([query], query_embeddings, k=n)
        return [self.by_id[demo_id] for demo_id in retrieval.demo_ids]

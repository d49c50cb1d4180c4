"""``DemonstrationRetriever``: per query, the k pool examples to show, in prompt order.

It is also a library call for other evaluation harnesses: ``retriever.sample(n, query)``
returns ``n`` demonstration ``Example`` objects, as lm-evaluation-harness samplers do.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from drum.data.example import Example
from drum.data.images import image_key
from drum.embed.base import Embedder, l2_normalize
from drum.embed.cache import EmbeddingCache
from drum.index import IndexConfig, VectorIndex
from drum.retrieve.strategies import RetrievalConfig, pool_vectors, query_vectors


@dataclass(frozen=True)
class Retrieval:
    """The demonstrations chosen for one query, in prompt order, with their scores."""

    query_id: str
    demo_ids: tuple[str, ...]
    scores: tuple[float, ...]


@dataclass
class PoolEmbeddings:
    """Image and text embeddings of a list of examples, row ``i`` for ``examples[i]``.

    An example with several images is represented by the mean of its images' L2-normalised
    embeddings, L2-normalised again: ``normalize(mean_j e(image_j))``, a unit vector like any
    other row (an example with one image keeps that image's embedding as it is).

    Example::

        pool = PoolEmbeddings.compute(examples, embedder, EmbeddingCache("runs/cache"))
        pool.image.shape, pool.text.shape  # (len(examples), embedder.dim) each
    """

    examples: list[Example]
    image: np.ndarray  # (N, D)
    text: np.ndarray  # (N, D)

    @classmethod
    def compute(
        cls,
        examples: Sequence[Example],
        embedder: Embedder,
        cache: EmbeddingCache | None = None,
        progress: bool = False,
    ) -> PoolEmbeddings:
        """Embed every example's images and text (through ``cache``: each distinct image or
        text once, ever)."""
        imageless = [example.id for example in examples if not example.images]
        if imageless:
            raise ValueError(f"Example {imageless[0]!r} has no image")
        counts = [len(example.images) for example in examples]
        images = [path for example in examples for path in example.images]
        texts = [example.text for example in examples]
        if cache is not None:
            flat = cache.embed_images(embedder, images, progress=progress)
            text = cache.embed_texts(embedder, texts, progress=progress)
        else:
            flat = embedder.embed_images(images, progress=progress)
            text = embedder.embed_texts(texts, progress=progress)
        return cls(list(examples), _mean_per_example(flat, counts), text)


def _mean_per_example(flat: np.ndarray, counts: Sequence[int]) -> np.ndarray:
    """Consecutive rows of ``flat``, ``counts[i]`` of them for example ``i`` -> one unit vector
    per example (see ``PoolEmbeddings``). A single row is kept untouched: renormalising a unit
    vector could move its last bits, and single-image examples must not change."""
    if all(count == 1 for count in counts):
        return flat
    rows = np.empty((len(counts), flat.shape[1]), dtype=np.float32)  # (N, D)
    start = 0
    for row, count in enumerate(counts):
        group = flat[start : start + count]  # (count, D)
        rows[row] = group[0] if count == 1 else l2_normalize(group.mean(axis=0))
        start += count
    return rows


def _content_key(example: Example) -> tuple[str, ...]:
    return (example.text, *(image_key(path) for path in example.images))


class PoolExclusions:
    """The pool rows each query must not see (``RetrievalConfig.exclude_self``): the pool
    example with the query's id, and every pool example with identical content (same text,
    same image bytes).

    A query drawn from the pool therefore has at most ``len(pool) - 1`` demonstrations to
    choose from, fewer when the pool holds copies of it. Content keys hash the image files,
    once per pool example (lazily, at the first query).

    Example::

        exclusions = PoolExclusions(pool)
        exclusions.rows(pool[3])  # {3}, plus the rows of any exact copies of pool[3]
    """

    def __init__(self, pool: Sequence[Example]) -> None:
        self.pool = list(pool)
        self._row_of = {example.id: row for row, example in enumerate(self.pool)}
        self._keys: dict[tuple[str, ...], list[int]] | None = None

    def rows(self, query: Example) -> set[int]:
        """Pool rows ``query`` must not see."""
        if self._keys is None:
            self._keys = {}
            for row, example in enumerate(self.pool):
                self._keys.setdefault(_content_key(example), []).append(row)
        rows = set(self._keys.get(_content_key(query), []))
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

    Example::

        pool = PoolEmbeddings.compute(read_examples("world/vqa/pool.jsonl"), embedder, cache)
        retriever = DemonstrationRetriever(pool, RetrievalConfig("concat", k=4), embedder=embedder)
        [retrieval] = retriever.retrieve([query])
        retrieval.demo_ids  # 4 pool ids, most similar last
    """

    def __init__(
        self,
        pool: PoolEmbeddings | Sequence[Example],
        config: RetrievalConfig,
        index_config: IndexConfig | None = None,
        embedder: Embedder | None = None,
        cache: EmbeddingCache | None = None,
    ) -> None:
        self.config = config
        self.embedder, self.cache = embedder, cache
        if isinstance(pool, PoolEmbeddings):
            self.pool_embeddings: PoolEmbeddings | None = pool
            self.pool = pool.examples
        else:
            if config.uses_similarity:
                raise ValueError(f"strategy {config.spec.name!r} needs PoolEmbeddings for the pool")
            self.pool_embeddings, self.pool = None, list(pool)
        if config.k > len(self.pool):
            raise ValueError(f"k={config.k} exceeds the pool size {len(self.pool)}")
        if not self.pool:
            raise ValueError("the demonstration pool is empty")
        self.by_id = {example.id: example for example in self.pool}
        self.row_of = {example.id: row for row, example in enumerate(self.pool)}
        self._exclusions = PoolExclusions(self.pool)
        self.index: VectorIndex | None = None
        if config.uses_similarity:
            assert self.pool_embeddings is not None
            vectors = pool_vectors(config, self.pool_embeddings.image, self.pool_embeddings.text)
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
        query_embeddings: PoolEmbeddings | None = None,
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
                query_embeddings = PoolEmbeddings.compute(queries, self.embedder, self.cache)
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
        query_embeddings: PoolEmbeddings,
        k: int,
        excluded: Sequence[set[int]],
    ) -> list[list[tuple[int, float]]]:
        assert self.index is not None
        vectors = query_vectors(self.config, query_embeddings.image, query_embeddings.text)
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
        self, n: int, query: Example, query_embeddings: PoolEmbeddings | None = None
    ) -> list[Example]:
        """``n`` demonstrations for ``query`` in prompt order (the sampler interface)."""
        (retrieval,) = self.retrieve([query], query_embeddings, k=n)
        return [self.by_id[demo_id] for demo_id in retrieval.demo_ids]

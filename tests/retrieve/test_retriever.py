"""Strategies, ordering, exclusions and the sampler API of DemonstrationRetriever."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from drum.data.example import Example
from drum.embed.base import Embedder, l2_normalize
from drum.embed.example_embeddings import ExampleEmbeddings
from drum.retrieve.retriever import DemonstrationRetriever
from drum.retrieve.strategies import RetrievalConfig, pool_vectors, query_vectors
from tests.multi_image import multi_image_pool

N, D = 40, 8


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> ExampleEmbeddings:
    directory = tmp_path_factory.mktemp("pool")
    rng = np.random.default_rng(0)
    examples = []
    for i in range(N):
        path = directory / f"{i}.png"
        Image.new("RGB", (4, 4), (i, 2 * i, 3)).save(path)
        examples.append(Example(f"p{i}", (path,), f"question {i}", (f"a{i % 5}",), "vqa"))
    return ExampleEmbeddings(
        examples, l2_normalize(rng.normal(size=(N, D))), l2_normalize(rng.normal(size=(N, D)))
    )


def _queries(pool: ExampleEmbeddings, rows: list[int]) -> ExampleEmbeddings:
    return ExampleEmbeddings([pool.examples[r] for r in rows], pool.image[rows], pool.text[rows])


def _fresh_query(tmp_path: Path, rng: np.random.Generator) -> ExampleEmbeddings:
    path = tmp_path / "query.png"
    Image.new("RGB", (4, 4), (255, 0, 0)).save(path)
    query = Example("q", (path,), "a brand new question", ("a1",), "vqa")
    return ExampleEmbeddings(
        [query], l2_normalize(rng.normal(size=(1, D))), l2_normalize(rng.normal(size=(1, D)))
    )


@pytest.mark.parametrize("strategy", ["image", "text", "cross", "concat"])
@pytest.mark.parametrize("weight", [0.5, 0.8])
def test_scores_match_the_formula_by_brute_force(
    pool: ExampleEmbeddings, strategy: str, weight: float, tmp_path: Path
) -> None:
    query = _fresh_query(tmp_path, np.random.default_rng(1))
    config = RetrievalConfig(strategy=strategy, k=5, image_weight=weight, order="similar_first")
    (retrieval,) = DemonstrationRetriever(pool, config).retrieve(query.examples, query)
    qi, qt, pi, pt = query.image[0], query.text[0], pool.image, pool.text
    expected = {
        "image": pi @ qi,
        "text": pt @ qt,
        "cross": (pt @ qi + pi @ qt) / 2,
        "concat": weight * (pi @ qi) + (1 - weight) * (pt @ qt),
    }[strategy]
    best = np.argsort(-expected)[:5]
    assert retrieval.demo_ids == tuple(f"p{i}" for i in best)
    np.testing.assert_allclose(retrieval.scores, expected[best], atol=1e-5)


def test_combined_vectors_stay_unit_norm(pool: ExampleEmbeddings) -> None:
    for strategy in ("cross", "concat"):
        config = RetrievalConfig(strategy=strategy, image_weight=0.3)
        for vectors in (
            query_vectors(config, pool.image, pool.text),
            pool_vectors(config, pool.image, pool.text),
        ):
            np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_order_most_similar_last_by_default(pool: ExampleEmbeddings) -> None:
    queries = _queries(pool, [0, 1, 2])
    first = DemonstrationRetriever(pool, RetrievalConfig("concat", k=4, order="similar_first"))
    last = DemonstrationRetriever(pool, RetrievalConfig("concat", k=4))
    for a, b in zip(
        first.retrieve(queries.examples, queries),
        last.retrieve(queries.examples, queries),
        strict=True,
    ):
        assert a.demo_ids == b.demo_ids[::-1]
        assert list(b.scores) == sorted(b.scores)


@pytest.mark.parametrize("strategy", ["random", "fixed", "image", "concat"])
def test_query_in_pool_never_sees_itself(pool: ExampleEmbeddings, strategy: str) -> None:
    queries = _queries(pool, list(range(N)))
    retriever = DemonstrationRetriever(pool, RetrievalConfig(strategy, k=N - 1))
    for query, retrieval in zip(
        queries.examples, retriever.retrieve(queries.examples, queries), strict=True
    ):
        assert query.id not in retrieval.demo_ids
        assert len(set(retrieval.demo_ids)) == N - 1


def test_exact_duplicates_of_the_query_are_excluded(pool: ExampleEmbeddings) -> None:
    original = pool.examples[3]
    duplicate = Example("dup-of-p3", original.images, original.text, original.answers, "vqa")
    with_duplicate = ExampleEmbeddings(
        [*pool.examples, duplicate],
        np.vstack([pool.image, pool.image[3:4]]),
        np.vstack([pool.text, pool.text[3:4]]),
    )
    queries = _queries(pool, [3])
    (retrieval,) = DemonstrationRetriever(with_duplicate, RetrievalConfig("image", k=3)).retrieve(
        queries.examples, queries
    )
    assert not {"p3", "dup-of-p3"} & set(retrieval.demo_ids)
    (kept,) = DemonstrationRetriever(
        with_duplicate, RetrievalConfig("image", k=3, exclude_self=False)
    ).retrieve(queries.examples, queries)
    assert {"p3", "dup-of-p3"} <= set(kept.demo_ids)


def test_random_is_seeded_per_query_and_fixed_is_shared(
    pool: ExampleEmbeddings, tmp_path: Path
) -> None:
    queries = [_fresh_query(tmp_path, np.random.default_rng(s)).examples[0] for s in range(1)]
    other = Example("q2", queries[0].images, "another question", ("a0",), "vqa")
    random_a = DemonstrationRetriever(pool.examples, RetrievalConfig("random", k=4, seed=0))
    random_b = DemonstrationRetriever(pool.examples, RetrievalConfig("random", k=4, seed=0))
    random_c = DemonstrationRetriever(pool.examples, RetrievalConfig("random", k=4, seed=1))
    a = random_a.retrieve([queries[0], other])
    assert a == random_b.retrieve([queries[0], other])
    assert a[0].demo_ids != a[1].demo_ids
    assert a[0].demo_ids != random_c.retrieve([queries[0]])[0].demo_ids
    fixed = DemonstrationRetriever(pool.examples, RetrievalConfig("fixed", k=4)).retrieve(
        [queries[0], other]
    )
    assert fixed[0].demo_ids == fixed[1].demo_ids


def test_sample_returns_examples_for_any_n(pool: ExampleEmbeddings) -> None:
    queries = _queries(pool, [5])
    retriever = DemonstrationRetriever(pool, RetrievalConfig("concat", k=4))
    for n in (0, 1, 4, 7):
        demos = retriever.sample(n, queries.examples[0], queries)
        assert len(demos) == n and all(isinstance(d, Example) for d in demos)
    assert [d.id for d in retriever.sample(7, queries.examples[0], queries)][-4:] == [
        d.id for d in retriever.sample(4, queries.examples[0], queries)
    ]


def test_clear_errors(pool: ExampleEmbeddings) -> None:
    with pytest.raises(ValueError, match="unknown strategy"):
        RetrievalConfig("nearest")
    with pytest.raises(ValueError, match="needs ExampleEmbeddings"):
        DemonstrationRetriever(pool.examples, RetrievalConfig("image"))
    with pytest.raises(ValueError, match="exceeds the pool size"):
        DemonstrationRetriever(pool, RetrievalConfig("image", k=N + 1))
    with pytest.raises(ValueError, match="needs query embeddings"):
        DemonstrationRetriever(pool, RetrievalConfig("image")).retrieve(pool.examples[:1])
    assert math.isclose(RetrievalConfig().image_weight, 0.5)


def test_end_to_end_on_the_tiny_world_with_an_hf_embedder(
    tiny_world: Path, tiny_clip_dir: Path
) -> None:
    from drum.data.jsonl import read_examples
    from drum.embed.hf import HFDualEncoder

    embedder = HFDualEncoder(tiny_clip_dir)
    pool_examples = read_examples(tiny_world / "vqa" / "pool.jsonl")
    queries = read_examples(tiny_world / "vqa" / "val.jsonl")
    pool_embeddings = ExampleEmbeddings.compute(pool_examples, embedder)
    retriever = DemonstrationRetriever(
        pool_embeddings, RetrievalConfig("concat", k=3), embedder=embedder
    )
    demos = retriever.sample(3, queries[0])  # embeds the query itself
    assert len(demos) == 3 and all(d.id.startswith("vqa-pool-") for d in demos)
    # Single-image examples embed exactly their image, as one batch of the embedder.
    assert np.array_equal(
        pool_embeddings.image, embedder.embed_images([e.image for e in pool_examples])
    )

    # Pool examples of two images each (two pool images side by side) retrieve as well.
    paired = [
        Example(f"pair{i}", (a.image, b.image), a.text, a.answers, "vqa")
        for i, (a, b) in enumerate(zip(pool_examples[::2], pool_examples[1::2], strict=True))
    ]
    paired_embeddings = ExampleEmbeddings.compute(paired, embedder)
    np.testing.assert_allclose(np.linalg.norm(paired_embeddings.image, axis=1), 1.0, atol=1e-5)
    query = Example("q", paired[0].images, "another text", ("x",), "vqa")
    best = DemonstrationRetriever(
        paired_embeddings, RetrievalConfig("image", k=1), embedder=embedder
    )
    assert [d.id for d in best.sample(1, query)] == ["pair0"]


# ------------------------------------------------------------------------ multi-image examples
class HashEmbedder(Embedder):
    """Unit vectors drawn from a seed hashed from the image's bytes / the text; counts calls."""

    def __init__(self) -> None:
        self.images_embedded: list[str] = []

    @property
    def dim(self) -> int:
        return D

    @property
    def fingerprint(self) -> str:
        return "hash-embedder"

    @staticmethod
    def _vector(content: bytes) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(content).digest()[:8], "little")
        return l2_normalize(np.random.default_rng(seed).normal(size=D))

    def embed_images(self, images, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        self.images_embedded += [Path(image).name for image in images]
        return np.stack([self._vector(Path(i).read_bytes()) for i in images]).reshape(-1, D)

    def embed_texts(self, texts, batch_size: int = 256, progress: bool = False) -> np.ndarray:
        return np.stack([self._vector(t.encode()) for t in texts]).reshape(-1, D)


def test_retrieval_over_a_multi_image_pool(image_paths: list[Path]) -> None:
    embedder = HashEmbedder()
    pool = ExampleEmbeddings.compute(multi_image_pool(image_paths), embedder)
    # A query showing images 4, 5 and 6 (another text): its best image match is m3.
    query = Example("q", (image_paths[4], image_paths[5], image_paths[6]), "new", ("a",), "vqa")
    for strategy in ("image", "concat"):
        retriever = DemonstrationRetriever(
            pool, RetrievalConfig(strategy, k=3, order="similar_first"), embedder=embedder
        )
        (retrieval,) = retriever.retrieve([query])
        query_vector = ExampleEmbeddings.compute([query], embedder)
        expected = pool.image @ query_vector.image[0]
        if strategy == "concat":
            expected = 0.5 * expected + 0.5 * (pool.text @ query_vector.text[0])
        best = np.argsort(-expected)[:3]
        assert retrieval.demo_ids == tuple(f"m{i}" for i in best)
        np.testing.assert_allclose(retrieval.scores, expected[best], atol=1e-5)
    (image_retrieval,) = DemonstrationRetriever(
        pool, RetrievalConfig("image", k=1), embedder=embedder
    ).retrieve([query])
    assert image_retrieval.demo_ids == ("m3",)
    assert image_retrieval.scores[0] == pytest.approx(1.0, abs=1e-5)


# ------------------------------------------------------ exactly k, or an error before any work
STRATEGIES_UNDER_TEST = ("random", "fixed", "image", "text", "cross", "concat")


def _pool_with_a_copy_of_p3(pool: ExampleEmbeddings) -> ExampleEmbeddings:
    """The pool plus an exact copy of p3 under another id: query p3 loses two rows (N - 1 left)."""
    original = pool.examples[3]
    copy = Example("copy-of-p3", original.images, original.text, original.answers, "vqa")
    return ExampleEmbeddings(
        [*pool.examples, copy],
        np.vstack([pool.image, pool.image[3:4]]),
        np.vstack([pool.text, pool.text[3:4]]),
    )


def _retriever(pool: ExampleEmbeddings, strategy: str, k: int) -> DemonstrationRetriever:
    config = RetrievalConfig(strategy, k=k)
    return DemonstrationRetriever(
        pool.examples if strategy in ("random", "fixed") else pool, config
    )


@pytest.mark.parametrize("strategy", STRATEGIES_UNDER_TEST)
def test_k_equal_to_the_pool_left_after_exclusions_gives_exactly_k(
    pool: ExampleEmbeddings, strategy: str
) -> None:
    extended = _pool_with_a_copy_of_p3(pool)  # N + 1 examples, N - 1 of them left for p3
    available = len(extended.examples) - 2
    queries = _queries(pool, [3, 4])  # p4 has N examples left: more than enough
    retriever = _retriever(extended, strategy, available)
    for retrieval in retriever.retrieve(queries.examples, queries):
        assert len(retrieval.demo_ids) == len(set(retrieval.demo_ids)) == available
        assert not {retrieval.query_id, "copy-of-p3"} & set(retrieval.demo_ids) or (
            retrieval.query_id == "p4" and "copy-of-p3" in retrieval.demo_ids
        )
    (p3,) = retriever.retrieve(queries.examples[:1], _queries(pool, [3]))
    assert set(p3.demo_ids) == {e.id for e in extended.examples} - {"p3", "copy-of-p3"}
    assert len(retriever.sample(available, queries.examples[0], _queries(pool, [3]))) == available


@pytest.mark.parametrize("strategy", STRATEGIES_UNDER_TEST)
def test_k_above_the_pool_left_after_exclusions_is_a_clear_error(
    pool: ExampleEmbeddings, strategy: str
) -> None:
    extended = _pool_with_a_copy_of_p3(pool)
    available = len(extended.examples) - 2
    queries = _queries(pool, [4, 3])
    retriever = _retriever(extended, strategy, available + 1)
    message = rf"query 'p3': k={available + 1} .* only {available} of the pool's {N + 1} examples"
    with pytest.raises(ValueError, match=message):
        retriever.retrieve(queries.examples, queries)
    with pytest.raises(ValueError, match=message):
        retriever.sample(available + 1, queries.examples[1], _queries(pool, [3]))
    # p4 alone (one row excluded) still gets its N demonstrations.
    (p4,) = retriever.retrieve(queries.examples[:1], _queries(pool, [4]))
    assert len(p4.demo_ids) == available + 1


def test_the_check_comes_before_any_query_is_embedded(pool: ExampleEmbeddings) -> None:
    embedder = HashEmbedder()
    retriever = DemonstrationRetriever(pool, RetrievalConfig("concat", k=N), embedder=embedder)
    with pytest.raises(ValueError, match="query 'p0'"):
        retriever.retrieve(pool.examples[:1])  # would embed p0 if the check came later
    assert embedder.images_embedded == []


def test_enough_demonstrations_left_picks_as_before(pool: ExampleEmbeddings) -> None:
    """fixed: the first k of the seeded permutation that are not excluded; random: a seeded
    choice among the rows left (the picks of the code before the k-checks, by hand)."""
    import drum.retrieve.retriever as retriever_module

    query = pool.examples[7]
    order = [int(i) for i in np.random.default_rng(3).permutation(N)]
    (fixed,) = DemonstrationRetriever(
        pool.examples, RetrievalConfig("fixed", k=5, seed=3, order="similar_first")
    ).retrieve([query])
    assert fixed.demo_ids == tuple(f"p{r}" for r in [r for r in order if r != 7][:5])
    rng = np.random.default_rng(retriever_module._stable_seed(3, query.id))
    drawn = rng.choice(np.array([r for r in range(N) if r != 7]), size=5, replace=False)
    (random_,) = DemonstrationRetriever(
        pool.examples, RetrievalConfig("random", k=5, seed=3, order="similar_first")
    ).retrieve([query])
    assert random_.demo_ids == tuple(f"p{int(r)}" for r in drawn)


def test_an_approximate_index_short_of_k_hits_is_an_error(pool: ExampleEmbeddings) -> None:
    from drum.index import IndexConfig

    # 4 IVF lists probed one at a time: a query reaches about a quarter of the pool.
    retriever = DemonstrationRetriever(
        pool, RetrievalConfig("image", k=N - 1), IndexConfig("IVF4,Flat", nprobe=1)
    )
    queries = _queries(pool, [0])
    with pytest.raises(ValueError, match="nprobe"):
        retriever.retrieve(queries.examples, queries)

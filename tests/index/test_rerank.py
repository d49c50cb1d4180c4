"""PQ + exact re-ranking: better recall than PQ alone, exact scores, round trip through disk
with the vectors memory-mapped, clear errors."""

from __future__ import annotations

import json

import faiss
import numpy as np
import pytest

from drum.index import (
    INDEX_FILE,
    SIDECAR_FILE,
    VECTORS_FILE,
    IndexConfig,
    IndexFileError,
    VectorIndex,
)
from tests.index.exact import brute_force_search
from tests.index.vectors import clustered

DIM, N = 32, 5000
# 16 lists, 16 sub-quantizers of 4 bits: 8 bytes a vector, 1/16 of the 128-byte float32 row.
# "np": no polysemous training (a slow annealing step only polysemous search would use).
PQ = "IVF16,PQ16x4np"


def _clustered(n: int, seed: int) -> np.ndarray:
    return clustered(n, DIM, seed, n_centres=16, noise=0.5)


def _ids(n: int) -> list[str]:
    return [f"ex{i:05d}" for i in range(n)]


def _recall(approx: np.ndarray, exact: np.ndarray) -> float:
    hits = sum(len(set(a) & set(e)) for a, e in zip(approx.tolist(), exact.tolist(), strict=True))
    return hits / exact.size


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return _clustered(N, 0), _clustered(100, 1)


@pytest.fixture(scope="module")
def trained(data) -> tuple[VectorIndex, VectorIndex]:
    """The same IVF-PQ index without and with re-ranking of its top 50 (same training)."""
    database, _ = data
    plain = VectorIndex(DIM, IndexConfig(PQ, nprobe=8))
    plain.train(database)
    reranked = VectorIndex(DIM, IndexConfig(PQ, nprobe=8, rerank=50))
    # The same codebooks (FAISS's k-means is seeded), so that only the re-ranking differs.
    reranked.train(database)
    ivfs = [faiss.downcast_index(faiss.extract_index_ivf(i.faiss_index)) for i in (plain, reranked)]
    np.testing.assert_array_equal(*(faiss.vector_to_array(ivf.pq.centroids) for ivf in ivfs))
    plain.add(database, _ids(N))
    reranked.add(database, _ids(N))
    return plain, reranked


def test_rerank_raises_recall_and_scores_are_exact(data, trained) -> None:
    database, queries = data
    plain, reranked = trained
    ref_scores, exact = brute_force_search(database, queries, 10)
    _, plain_labels = plain.search(queries, 10)
    scores, labels = reranked.search(queries, 10)
    plain_recall, rerank_recall = _recall(plain_labels, exact), _recall(labels, exact)
    assert rerank_recall > plain_recall + 0.2, (plain_recall, rerank_recall)
    assert rerank_recall >= 0.85
    # Each returned score is the exact inner product of its id, best first.
    np.testing.assert_allclose(
        scores, np.einsum("qkd,qd->qk", database[labels], queries), atol=1e-5, rtol=0
    )
    assert (np.diff(scores, axis=1) <= 0).all()
    # rerank=0 for one call is FAISS's own top-k; a deeper rerank can only find more.
    for a, b in zip(reranked.search(queries, 10, rerank=0), plain.search(queries, 10), strict=True):
        np.testing.assert_array_equal(a, b)
    assert _recall(reranked.search(queries, 10, rerank=200)[1], exact) >= rerank_recall
    # Where the true neighbour was found, its score equals the flat index's.
    flat = VectorIndex(DIM)
    flat.add(database, _ids(N))
    flat_scores, flat_labels = flat.search(queries, 10)
    for row in range(len(queries)):
        flat_of = dict(zip(flat_labels[row].tolist(), flat_scores[row].tolist(), strict=True))
        for label, score in zip(labels[row].tolist(), scores[row].tolist(), strict=True):
            if label in flat_of:
                assert abs(flat_of[label] - score) <= 1e-5
    np.testing.assert_allclose(flat_scores, ref_scores, atol=1e-5, rtol=0)


def test_rerank_l2_scores_are_exact_squared_distances() -> None:
    database, queries = _clustered(2000, 2), _clustered(20, 3)
    index = VectorIndex(DIM, IndexConfig("IVF8,PQ8x4np", "l2", nprobe=8, rerank=40))
    index.add(database, _ids(2000))
    scores, labels = index.search(queries, 5)
    expected = ((database[labels] - queries[:, None, :]) ** 2).sum(axis=2)
    np.testing.assert_allclose(scores, expected, atol=1e-5, rtol=0)
    assert (np.diff(scores, axis=1) >= 0).all()  # ascending distances


def test_save_load_round_trip_maps_the_vectors(tmp_path, data, trained) -> None:
    _, queries = data
    _, reranked = trained
    assert reranked.rerank_vectors_path is None  # built in RAM
    reranked.save(tmp_path, meta={"pool": "p.jsonl"})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [INDEX_FILE, SIDECAR_FILE, VECTORS_FILE]
    )
    loaded = VectorIndex.load(tmp_path)
    assert loaded.config == reranked.config and loaded.ids == reranked.ids
    assert loaded.rerank_vectors_path == tmp_path / VECTORS_FILE
    assert isinstance(loaded.rerank_vectors.base, np.memmap) or isinstance(
        loaded.rerank_vectors, np.memmap
    )
    for a, b in zip(reranked.search(queries, 10), loaded.search(queries, 10), strict=True):
        np.testing.assert_array_equal(a, b)
    assert loaded.search_ids(queries, 3)[1] == reranked.search_ids(queries, 3)[1]
    # The FAISS index alone is far smaller than the vectors it re-ranks from.
    assert loaded.index_bytes() < (tmp_path / VECTORS_FILE).stat().st_size / 4
    # Saving a loaded (mapped) index onto its own directory, after an add, keeps all rows.
    extra = _clustered(3, 4)
    loaded.add(extra, ["new0", "new1", "new2"])
    assert loaded.rerank_vectors_path is None
    loaded.save(tmp_path)
    again = VectorIndex.load(tmp_path)
    assert len(again) == N + 3
    np.testing.assert_array_equal(again.rerank_vectors[-3:], extra)
    np.testing.assert_array_equal(again.rerank_vectors[:N], reranked.rerank_vectors)


def test_float16_store_is_half_the_size_and_close(tmp_path) -> None:
    database, queries = _clustered(2000, 5), _clustered(20, 6)
    index = VectorIndex(
        DIM, IndexConfig("IVF8,PQ8x4np", nprobe=8, rerank=40, rerank_dtype="float16")
    )
    index.add(database, _ids(2000))
    assert index.rerank_vectors.dtype == np.float16
    scores, labels = index.search(queries, 5)
    np.testing.assert_allclose(
        scores, np.einsum("qkd,qd->qk", database[labels], queries), atol=2e-3, rtol=0
    )
    index.save(tmp_path)
    assert (tmp_path / VECTORS_FILE).stat().st_size < 2000 * DIM * 2 + 1024
    np.testing.assert_array_equal(VectorIndex.load(tmp_path).search(queries, 5)[1], labels)
    with pytest.raises(ValueError, match="overflow float16.*row 1"):
        index.add(np.full((2, DIM), [[0.0]] * 1 + [[1e6]], np.float32), ["a", "b"])


def test_k_beyond_rerank_and_ntotal_pads() -> None:
    database = _clustered(300, 7)
    index = VectorIndex(DIM, IndexConfig("IVF4,PQ4x4np", nprobe=4, rerank=5))
    index.add(database, _ids(300))
    scores, labels = index.search(database[:2], 20)  # k > rerank: k candidates
    assert labels.shape == (2, 20) and (labels >= 0).all()
    assert (labels[:, 0] == [0, 1]).all()  # each vector finds itself first
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)
    small = VectorIndex(DIM, IndexConfig("PQ4x4np", rerank=5))
    small.train(database)
    small.add(database[:3], _ids(3))
    scores, labels = small.search(database[:1], 8)
    assert (labels[0, 3:] == -1).all() and sorted(labels[0, :3]) == [0, 1, 2]
    assert (scores[0, 3:] == -np.finfo(np.float32).max).all()


def test_sidecar_without_rerank_is_unchanged(tmp_path) -> None:
    # Indexes without re-ranking write the same config keys as before re-ranking existed.
    index = VectorIndex(DIM)
    index.add(_clustered(5, 8), _ids(5))
    index.save(tmp_path)
    sidecar = json.loads((tmp_path / SIDECAR_FILE).read_text())
    assert set(sidecar["config"]) == {"factory", "metric", "nprobe", "ef_search"}
    assert "vectors" not in sidecar and not (tmp_path / VECTORS_FILE).exists()


def test_rerank_on_an_index_without_stored_vectors(trained) -> None:
    plain, reranked = trained
    query = np.ones((1, DIM), np.float32)
    with pytest.raises(ValueError, match="rerank=20: this index keeps no vectors"):
        plain.search(query, 5, rerank=20)
    with pytest.raises(ValueError, match="rerank must be a non-negative int"):
        reranked.search(query, 5, rerank=-1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"factory": "Flat", "rerank": 10}, "exact already"),
        ({"factory": "IVF16,PQ8np,RFlat", "rerank": 10}, "Refine / RFlat"),
        ({"factory": "IVF16,PQ8np,Refine(SQ8)", "rerank": 10}, "Refine / RFlat"),
        ({"factory": PQ, "rerank": 0}, "rerank must be a positive int"),
        ({"factory": PQ, "rerank": 10, "rerank_dtype": "int8"}, "rerank_dtype must be one of"),
    ],
)
def test_bad_rerank_configs(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        IndexConfig(**kwargs)


def _saved_reranked(tmp_path) -> None:
    index = VectorIndex(DIM, IndexConfig("IVF4,PQ4x4np", nprobe=2, rerank=10))
    index.add(_clustered(300, 9), _ids(300))
    index.save(tmp_path)


def _edit(tmp_path, edit) -> None:
    path = tmp_path / SIDECAR_FILE
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def test_load_without_stored_vectors_is_clear(tmp_path) -> None:
    _saved_reranked(tmp_path)
    (tmp_path / VECTORS_FILE).unlink()
    with pytest.raises(IndexFileError, match=f"{VECTORS_FILE}: missing .*rerank=10"):
        VectorIndex.load(tmp_path)
    _edit(tmp_path, lambda data: data.pop("vectors"))
    with pytest.raises(IndexFileError, match=f"{SIDECAR_FILE}: config has rerank=10 but no"):
        VectorIndex.load(tmp_path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["vectors"].update(sha256="0" * 64), f"{VECTORS_FILE}.*sha256"),
        (lambda d: d["config"].update(rerank_dtype="float16"), "dtype float32, but"),
        (lambda d: d["config"].update(rerank=None), "'vectors' entry but its config has no"),
    ],
)
def test_load_rejects_inconsistent_vectors(tmp_path, edit, message: str) -> None:
    _saved_reranked(tmp_path)
    _edit(tmp_path, edit)
    with pytest.raises(IndexFileError, match=message):
        VectorIndex.load(tmp_path)


def test_load_rejects_vectors_of_another_shape(tmp_path) -> None:
    _saved_reranked(tmp_path)
    np.save(tmp_path / VECTORS_FILE, np.zeros((299, DIM), np.float32))
    digest = __import__("hashlib").sha256((tmp_path / VECTORS_FILE).read_bytes()).hexdigest()
    _edit(tmp_path, lambda d: d["vectors"].update(sha256=digest))
    with pytest.raises(IndexFileError, match=r"shape \(299, 32\), expected \(300, 32\)"):
        VectorIndex.load(tmp_path)

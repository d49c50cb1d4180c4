"""VectorIndex agrees with exact numpy search, round-trips through disk, and fails loudly."""

from __future__ import annotations

import contextlib
import errno
import json

import faiss
import numpy as np
import pytest

import drum.index.faiss_index as faiss_index_module
from drum.index import (
    INDEX_FILE,
    SIDECAR_FILE,
    IndexConfig,
    IndexFileError,
    VectorIndex,
)
from tests.index.exact import brute_force_search
from tests.index.vectors import clustered

DIM = 32


def _random(n: int, seed: int, normalize: bool = True) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    if normalize:
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def _clustered(n: int, seed: int) -> np.ndarray:
    return clustered(n, DIM, seed, n_centres=32, noise=0.2)


def _ids(n: int, start: int = 0) -> list[str]:
    return [f"ex{i:05d}" for i in range(start, start + n)]


def _build(config: IndexConfig, database: np.ndarray, **kwargs) -> VectorIndex:
    index = VectorIndex(database.shape[1], config, **kwargs)
    index.add(database, _ids(len(database)))
    return index


def _assert_matches_exact(
    scores: np.ndarray, labels: np.ndarray, ref_scores: np.ndarray, ref_labels: np.ndarray
) -> None:
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5, rtol=0)
    # Labels must agree except where neighbouring scores tie within float error.
    for row in range(len(labels)):
        for col in range(labels.shape[1]):
            if labels[row, col] != ref_labels[row, col]:
                gaps = np.abs(ref_scores[row] - ref_scores[row, col])
                gaps[col] = np.inf
                assert gaps.min() < 1e-5, (row, col, labels[row], ref_labels[row])


def _recall(approx: np.ndarray, exact: np.ndarray) -> float:
    hits = sum(len(set(a) & set(e)) for a, e in zip(approx.tolist(), exact.tolist(), strict=True))
    return hits / exact.size


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_flat_matches_brute_force(metric: str) -> None:
    database, queries = _random(500, 0, normalize=False), _random(40, 1, normalize=False)
    index = _build(IndexConfig("Flat", metric), database)
    scores, labels = index.search(queries, 10)
    assert scores.dtype == np.float32 and labels.dtype == np.int64
    assert scores.shape == labels.shape == (40, 10)
    _assert_matches_exact(scores, labels, *brute_force_search(database, queries, 10, metric))
    assert len(index) == index.ntotal == 500 and index.dim == DIM


def test_search_ids_maps_positions() -> None:
    database = _random(50, 2)
    index = _build(IndexConfig(), database)
    scores, ids = index.search_ids(database[[7, 30]], 3)
    assert [row[0] for row in ids] == ["ex00007", "ex00030"]
    assert scores.shape == (2, 3)
    assert index.ids == _ids(50)


def test_incremental_adds_continue_positions() -> None:
    database = _random(60, 3)
    index = VectorIndex(DIM)
    index.add(database[:25], _ids(25))
    index.add(database[25:], _ids(35, start=25))
    _, labels = index.search(database[[40]], 1)
    assert labels[0, 0] == 40 and index.ids[40] == "ex00040"


def test_k_larger_than_ntotal_pads_and_search_ids_drops() -> None:
    database = _random(5, 4)
    index = _build(IndexConfig(), database)
    scores, labels = index.search(database[:2], 8)
    assert (labels[:, 5:] == -1).all() and (labels[:, :5] >= 0).all()
    ref_scores, ref_labels = brute_force_search(database, database[:2], 8)
    np.testing.assert_array_equal(labels[:, 5:], ref_labels[:, 5:])
    np.testing.assert_array_equal(scores[:, 5:], ref_scores[:, 5:])
    _, ids = index.search_ids(database[:2], 8)
    assert [len(row) for row in ids] == [5, 5]
    assert sorted(ids[0]) == _ids(5)


def test_save_load_round_trip(tmp_path) -> None:
    database, queries = _random(300, 5), _random(20, 6)
    meta = {"dataset": "train.jsonl", "embedder": "clip-vit-b32@abc123"}
    index = _build(IndexConfig("Flat", "ip"), database, meta=meta)
    index.save(tmp_path / "idx")
    loaded = VectorIndex.load(tmp_path / "idx")
    for a, b in zip(index.search(queries, 7), loaded.search(queries, 7), strict=True):
        np.testing.assert_array_equal(a, b)
    assert loaded.ids == index.ids
    assert loaded.meta == meta
    assert loaded.config == index.config
    assert index.search_ids(queries, 7)[1] == loaded.search_ids(queries, 7)[1]
    # A loaded index keeps accepting adds and still rejects its old ids.
    with pytest.raises(ValueError, match="ex00003"):
        loaded.add(database[:1], ["ex00003"])


def test_save_meta_argument_replaces_meta(tmp_path) -> None:
    index = _build(IndexConfig(), _random(10, 7), meta={"old": 1})
    index.save(tmp_path, meta={"new": [1, 2]})
    assert index.meta == {"new": [1, 2]}
    assert VectorIndex.load(tmp_path).meta == {"new": [1, 2]}
    with pytest.raises(ValueError, match="JSON"):
        index.save(tmp_path, meta={"bad": object()})


def test_ivf_with_all_lists_probed_equals_exact(tmp_path) -> None:
    database, queries = _clustered(2000, 8), _clustered(50, 9)
    config = IndexConfig("IVF16,Flat", "ip", nprobe=16)
    index = VectorIndex(DIM, config)
    assert not index.is_trained
    index.add(database, _ids(2000))  # trains on the added vectors
    assert index.is_trained
    scores, labels = index.search(queries, 10)
    _assert_matches_exact(scores, labels, *brute_force_search(database, queries, 10))
    # nprobe comes back from the config on load.
    index.save(tmp_path)
    loaded_scores, loaded_labels = VectorIndex.load(tmp_path).search(queries, 10)
    np.testing.assert_array_equal(loaded_labels, labels)
    np.testing.assert_array_equal(loaded_scores, scores)


def test_ivf_explicit_train_then_small_add() -> None:
    database = _clustered(2000, 10)
    index = VectorIndex(DIM, IndexConfig("IVF16,Flat", nprobe=4))
    index.train(database)
    index.add(database[:3], _ids(3))  # too few to train on, fine once trained
    assert len(index) == 3


def test_untrained_add_with_too_few_vectors_is_clear() -> None:
    index = VectorIndex(DIM, IndexConfig("IVF16,Flat"))
    with pytest.raises(ValueError, match="call train"):
        index.add(_random(5, 11), _ids(5))
    assert len(index) == 0 and index.ids == []
    with pytest.raises(ValueError, match="untrained"):
        index.search(_random(1, 12), 1)


def test_hnsw_recall() -> None:
    # Unclustered data on purpose: on tight, well-separated clusters HNSW needs a much larger
    # efSearch (recall@10 was 0.83 at efSearch=64 on _clustered data) because the greedy
    # descent can land in the wrong cluster.
    database, queries = _random(2000, 13), _random(100, 14)
    index = _build(IndexConfig("HNSW32", "ip", ef_search=64), database)
    _, labels = index.search(queries, 10)
    _, exact = brute_force_search(database, queries, 10)
    assert _recall(labels, exact) >= 0.9


def test_search_parameters_reach_faiss() -> None:
    ivf = VectorIndex(DIM, IndexConfig("IVF16,Flat", nprobe=5))
    assert faiss.extract_index_ivf(ivf.faiss_index).nprobe == 5
    hnsw = VectorIndex(DIM, IndexConfig("HNSW16", ef_search=77))
    assert faiss.downcast_index(hnsw.faiss_index).hnsw.efSearch == 77


def test_duplicate_ids_are_rejected() -> None:
    index = VectorIndex(DIM)
    with pytest.raises(ValueError, match="'ex00001'.*this add"):
        index.add(_random(3, 15), ["ex00000", "ex00001", "ex00001"])
    assert len(index) == 0
    index.add(_random(2, 16), _ids(2))
    with pytest.raises(ValueError, match="'ex00001'.*already"):
        index.add(_random(1, 17), ["ex00001"])
    assert len(index) == 2


def test_dimension_mismatch_names_both_dims() -> None:
    index = VectorIndex(DIM)
    with pytest.raises(ValueError, match=rf"dimension 16.*dim {DIM}"):
        index.add(np.zeros((2, 16), np.float32), _ids(2))
    index.add(_random(2, 18), _ids(2))
    with pytest.raises(ValueError, match=rf"dimension 64.*dim {DIM}"):
        index.search(np.zeros((1, 64), np.float32), 1)


def test_bad_inputs_are_rejected() -> None:
    index = VectorIndex(DIM)
    vectors = _random(3, 19)
    vectors[1, 4] = np.nan
    with pytest.raises(ValueError, match="NaN or inf.*row 1"):
        index.add(vectors, _ids(3))
    with pytest.raises(ValueError, match="3 vectors but 2 ids"):
        index.add(_random(3, 20), _ids(2))
    with pytest.raises(ValueError, match="2-D"):
        index.search(np.zeros(DIM, np.float32), 1)
    with pytest.raises(ValueError, match="k must be"):
        index.search(_random(1, 21), 0)


@pytest.mark.parametrize(
    "kwargs",
    [{"metric": "cosine"}, {"nprobe": 0}, {"ef_search": -3}, {"nprobe": True}, {"factory": ""}],
)
def test_config_validation(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        IndexConfig(**kwargs)


def test_bad_factory_and_misplaced_parameters() -> None:
    with pytest.raises(ValueError, match="Bogus"):
        VectorIndex(DIM, IndexConfig("Bogus"))
    with pytest.raises(ValueError, match="nprobe=4 does not apply to factory 'Flat'"):
        VectorIndex(DIM, IndexConfig("Flat", nprobe=4))


def _saved(tmp_path, n: int = 20) -> VectorIndex:
    index = _build(IndexConfig(), _random(n, 22), meta={"v": 1})
    index.save(tmp_path)
    return index


def _edit_sidecar(tmp_path, **changes) -> None:
    path = tmp_path / SIDECAR_FILE
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"ntotal": 21}, "21 ids|ntotal"),
        ({"dim": 16}, "dim is 16 but index.faiss has 32"),
        ({"config": {"factory": "Flat", "metric": "l2"}}, "metric"),
        ({"sha256": "0" * 64}, "sha256"),
        ({"format": 99}, "format 99"),
        ({"config": {"factory": "Flat", "colour": 1}}, "colour"),
    ],
)
def test_load_rejects_mismatching_sidecar(tmp_path, changes: dict, message: str) -> None:
    _saved(tmp_path)
    _edit_sidecar(tmp_path, **changes)
    with pytest.raises(IndexFileError, match=message) as info:
        VectorIndex.load(tmp_path)
    assert SIDECAR_FILE in str(info.value) or INDEX_FILE in str(info.value)


def test_load_rejects_ids_not_matching_index(tmp_path) -> None:
    index = _saved(tmp_path)
    _edit_sidecar(tmp_path, ids=index.ids[:-1], ntotal=19)
    with pytest.raises(IndexFileError, match=f"{SIDECAR_FILE}.*ntotal is 19 but"):
        VectorIndex.load(tmp_path)


def test_load_rejects_corrupt_files(tmp_path) -> None:
    _saved(tmp_path)
    (tmp_path / SIDECAR_FILE).write_text("{not json")
    with pytest.raises(IndexFileError, match=f"{SIDECAR_FILE}.*not valid JSON"):
        VectorIndex.load(tmp_path)
    with pytest.raises(IndexFileError, match="missing"):
        VectorIndex.load(tmp_path / "nowhere")


def test_load_detects_index_from_a_different_save(tmp_path) -> None:
    _saved(tmp_path / "a", n=20)
    _saved(tmp_path / "b", n=20)
    # Same ntotal and dim, different content: only the checksum can tell.
    index_b = (tmp_path / "b" / INDEX_FILE).read_bytes()
    other = _build(IndexConfig(), _random(20, 99))
    other.save(tmp_path / "b")
    (tmp_path / "a" / INDEX_FILE).write_bytes((tmp_path / "b" / INDEX_FILE).read_bytes())
    assert index_b != (tmp_path / "b" / INDEX_FILE).read_bytes()
    with pytest.raises(IndexFileError, match=f"{INDEX_FILE}.*sha256"):
        VectorIndex.load(tmp_path / "a")


def test_failed_save_keeps_previous_save(tmp_path, monkeypatch) -> None:
    database, queries = _random(30, 23), _random(5, 24)
    index = _build(IndexConfig(), database, meta={"generation": 1})
    index.save(tmp_path)
    before = {name: (tmp_path / name).read_bytes() for name in (INDEX_FILE, SIDECAR_FILE)}
    expected = index.search_ids(queries, 5)

    index.add(_random(10, 25), _ids(10, start=30))

    def broken_serialize(_index: faiss.Index) -> np.ndarray:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(faiss, "serialize_index", broken_serialize)
    with pytest.raises(RuntimeError, match="disk on fire"):
        index.save(tmp_path, meta={"generation": 2})
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before)  # no temporaries left
    assert index.meta == {"generation": 1}
    loaded = VectorIndex.load(tmp_path)
    assert len(loaded) == 30 and loaded.meta == {"generation": 1}
    scores, ids = loaded.search_ids(queries, 5)
    np.testing.assert_array_equal(scores, expected[0])
    assert ids == expected[1]


def test_failure_while_writing_keeps_previous_save(tmp_path, monkeypatch) -> None:
    # The disk fills up halfway through writing index.faiss.
    index = _saved(tmp_path)
    before = {name: (tmp_path / name).read_bytes() for name in (INDEX_FILE, SIDECAR_FILE)}
    index.add(_random(5, 26), _ids(5, start=100))
    real_atomic_open = faiss_index_module.atomic_open

    class HalfWriter:
        def __init__(self, handle) -> None:
            self._handle = handle

        def write(self, data) -> int:
            self._handle.write(bytes(data)[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name: str):
            return getattr(self._handle, name)

    @contextlib.contextmanager
    def failing_atomic_open(path, mode="w"):
        with real_atomic_open(path, mode) as handle:
            yield HalfWriter(handle) if str(path).endswith(INDEX_FILE) else handle

    monkeypatch.setattr(faiss_index_module, "atomic_open", failing_atomic_open)
    with pytest.raises(OSError, match="No space"):
        index.save(tmp_path)
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before)
    assert len(VectorIndex.load(tmp_path)) == 20

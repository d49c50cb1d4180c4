"""``check_factory``: an impossible FAISS factory string is a one-line error before any
vectors exist (FAISS's own reason, without its C++ file and line)."""

from __future__ import annotations

import pytest

from drum.index.faiss_index import IndexConfig, check_factory


@pytest.mark.parametrize(
    ("factory", "n_vectors", "reason"),
    [
        ("IVF", None, "could not parse index string IVF"),
        ("PQ7", None, "should be a multiple of the number of subquantizers"),
        ("IVF100,Flat", 60, "Number of training points (60)"),
        ("PCA64,Flat", 60, "cannot output 64 dimensions from 32"),
    ],
)
def test_an_impossible_factory_is_one_line_with_faiss_reason(
    factory: str, n_vectors: int | None, reason: str
) -> None:
    with pytest.raises(ValueError) as info:
        check_factory(32, IndexConfig(factory=factory), n_vectors=n_vectors)
    message = str(info.value)
    assert reason in message and repr(factory) in message
    assert "\n" not in message and ".cpp" not in message


@pytest.mark.parametrize("factory", ["Flat", "HNSW16", "IVF4,Flat", "PQ4"])
def test_a_possible_factory_passes(factory: str) -> None:
    check_factory(32, IndexConfig(factory=factory), n_vectors=300)

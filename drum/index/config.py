"""``IndexConfig``: which FAISS index to build (an ``index_factory`` string), how to search it,
and whether to re-rank its candidates exactly (``drum.index.faiss_index``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import faiss

METRICS: dict[str, int] = {"ip": faiss.METRIC_INNER_PRODUCT, "l2": faiss.METRIC_L2}
RERANK_DTYPES = ("float32", "float16")


def _positive_int_or_none(name: str, value: object) -> None:
    # bool is an int subclass; nprobe=True is always a bug.
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int or None, got {value!r}")


@dataclass
class IndexConfig:
    """Which FAISS index to build (an ``index_factory`` string) and how to search it.

    ``nprobe`` applies to IVF indexes, ``ef_search`` to HNSW ones; ``None`` keeps FAISS defaults.

    ``rerank`` (``k'``, ``None`` = off): a search for the top ``k`` asks FAISS for its top
    ``max(k', k)`` candidates and re-ranks them by the exact score with the stored vectors, so
    the returned scores are exact inner products (squared distances for ``l2``) and recall@k is
    that of "the true top-k is among FAISS's top k'". The vectors are stored as
    ``rerank_dtype``: ``float32`` (``4 * dim`` bytes a vector on disk, exact scores) or
    ``float16`` (half of that; scores then carry float16 rounding, ~1e-3 relative).
    """

    factory: str = "Flat"
    metric: str = "ip"
    nprobe: int | None = None
    ef_search: int | None = None
    rerank: int | None = None
    rerank_dtype: str = "float32"

    def __post_init__(self) -> None:
        if not isinstance(self.factory, str) or not self.factory.strip():
            raise ValueError(
                f"factory must be a non-empty FAISS factory string, not {self.factory!r}"
            )
        if "IDMap" in self.factory:
            # Labels are insertion positions mapped through our own id list; FAISS ids would
            # break that mapping.
            raise ValueError(f"factory {self.factory!r}: IDMap is unsupported (ids are kept aside)")
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {sorted(METRICS)}, got {self.metric!r}")
        _positive_int_or_none("nprobe", self.nprobe)
        _positive_int_or_none("ef_search", self.ef_search)
        _positive_int_or_none("rerank", self.rerank)
        if self.rerank_dtype not in RERANK_DTYPES:
            raise ValueError(
                f"rerank_dtype must be one of {list(RERANK_DTYPES)}, got {self.rerank_dtype!r}"
            )
        if self.rerank is not None:
            if self.factory.strip() == "Flat":
                raise ValueError(
                    f"rerank={self.rerank} with factory 'Flat': a flat index is exact already; "
                    "re-ranking is for a compressed index such as 'IVF4096,PQ64'"
                )
            if "Refine" in self.factory or "RFlat" in self.factory:
                raise ValueError(
                    f"rerank={self.rerank} with factory {self.factory!r}, which re-ranks "
                    "already (Refine / RFlat); use one or the other"
                )

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if self.rerank is None:
            # Without re-ranking the sidecar stays what it was before re-ranking existed.
            del data["rerank"], data["rerank_dtype"]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IndexConfig:
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown IndexConfig fields {unknown}; expected a subset of {known}")
        return cls(**data)

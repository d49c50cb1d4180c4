"""The index tests' reference: exact search in numpy, with FAISS's output conventions."""

from __future__ import annotations

import numpy as np

from drum.index.config import METRICS


def brute_force_search(
    database: np.ndarray, queries: np.ndarray, k: int, metric: str = "ip"
) -> tuple[np.ndarray, np.ndarray]:
    """Exact search in numpy with FAISS's output conventions.

    ``ip``: inner products, descending; ``l2``: squared distances, ascending. Where ``k``
    exceeds the database size, labels pad with ``-1`` and scores with ``-/+FLT_MAX`` as in FAISS.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {sorted(METRICS)}, got {metric!r}")
    database = np.asarray(database, dtype=np.float64)
    queries = np.asarray(queries, dtype=np.float64)
    if database.ndim != 2 or queries.ndim != 2 or database.shape[1] != queries.shape[1]:
        raise ValueError(f"shapes {database.shape} and {queries.shape} are not (n, d) and (q, d)")
    if metric == "ip":
        # Negate so that one ascending sort serves both metrics.
        keys = -(queries @ database.T)
    else:
        keys = np.maximum(
            (queries**2).sum(axis=1)[:, None]
            - 2.0 * queries @ database.T
            + (database**2).sum(axis=1)[None, :],
            0.0,
        )
    n_queries, n_database = keys.shape
    found = min(k, n_database)
    # Stable sort: among exact ties the lower position wins, which is FAISS's usual order.
    order = np.argsort(keys, axis=1, kind="stable")[:, :found]
    values = np.take_along_axis(keys, order, axis=1)
    pad = float(np.finfo(np.float32).max)
    scores = np.full((n_queries, k), -pad if metric == "ip" else pad, dtype=np.float32)
    labels = np.full((n_queries, k), -1, dtype=np.int64)
    scores[:, :found] = -values if metric == "ip" else values
    labels[:, :found] = order
    return scores, labels

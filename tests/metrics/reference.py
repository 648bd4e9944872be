"""Brute-force references for the metrics: SciPy distances, NumPy sorts, Python loops."""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist

SCIPY_METRIC = {"cosine": "cosine", "l2": "euclidean", "l1": "cityblock"}


def distances(queries: np.ndarray, gallery: np.ndarray, metric: str) -> np.ndarray:
    """``(N, M)`` float64 distances, smaller = closer."""
    return cdist(queries.astype(np.float64), gallery.astype(np.float64), SCIPY_METRIC[metric])


def pessimistic_rank(row: np.ndarray, target: int) -> int:
    """1-based position of ``target`` after sorting by distance, the target last among ties."""
    is_target = np.zeros(row.size, dtype=np.int64)
    is_target[target] = 1
    order = np.lexsort((is_target, row))  # by distance, then non-targets before the target
    return int(np.flatnonzero(order == target)[0]) + 1


def ranks(queries: np.ndarray, gallery: np.ndarray, targets: np.ndarray, metric: str) -> np.ndarray:
    d = distances(queries, gallery, metric)
    return np.array([pessimistic_rank(d[i], int(t)) for i, t in enumerate(targets)])


def pooled_ranks(
    queries: np.ndarray, gallery: np.ndarray, pools: np.ndarray, metric: str
) -> np.ndarray:
    """``pools``: (N, R, P) gallery indices, the true item first."""
    n, r, _ = pools.shape
    out = np.empty((n, r), dtype=np.int64)
    for i in range(n):
        for j in range(r):
            row = distances(queries[i : i + 1], gallery[pools[i, j]], metric)[0]
            out[i, j] = pessimistic_rank(row, 0)
    return out

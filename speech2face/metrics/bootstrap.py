"""Percentile-bootstrap confidence intervals over test samples (queries, pairs), or over
the clusters they come in (speakers).

Resampling is over the first axis (one row per test sample, drawn with replacement), all
resamples at once in chunks of ``RESAMPLE_CHUNK_ELEMENTS`` values. Deterministic for a seed
(NumPy's PCG64; the resampled rows do not depend on the chunking). Percentile method: the
interval is the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles (linear
interpolation) of the statistic over resamples.

With ``clusters`` (one label per row, e.g. each segment's speaker) the bootstrap draws
clusters, not rows: a resample is ``C`` of the ``C`` clusters drawn with replacement, each
bringing all its rows (the cluster bootstrap). Rows of one speaker are not independent
draws (they share the voice and the face), so resampling them one by one makes intervals
too narrow; drawing whole speakers keeps their dependence. The mean of a resample is the
mean over all the rows it holds (so its point estimate is the mean over rows). When every
cluster holds one row, the draws are exactly those of the row bootstrap with the same seed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from torch import Tensor

from speech2face.metrics._common import ArrayLike, MetricError

DEFAULT_RESAMPLES = 1000
DEFAULT_CONFIDENCE = 0.95
RESAMPLE_CHUNK_ELEMENTS = 1 << 24  # resampled values held at once (128 MiB in float64)

# Takes one resampled array per input, each (B, n, ...), and returns the statistic of
# every resample, (B,).
Statistic = Callable[..., np.ndarray]


def _as_numpy(x: ArrayLike, name: str) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        return x
    raise MetricError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(x).__name__}")


def mean_statistic(x: np.ndarray) -> np.ndarray:  # (B, n, ...) -> (B,)
    """Mean over every axis but the first: the default statistic of :func:`bootstrap_ci`."""
    return x.reshape(x.shape[0], -1).mean(axis=1)


def cluster_index(clusters: Sequence[Any] | np.ndarray, n: int) -> tuple[np.ndarray, int]:
    """``(inverse, C)``: each row's cluster number (``(n,)`` ints in first-seen order) and the
    number of clusters, from one label per row."""
    labels = list(clusters)
    if len(labels) != n:
        raise MetricError(f"clusters must hold one label per row: {len(labels)} for {n} rows")
    numbers: dict[Any, int] = {}
    inverse = np.fromiter((numbers.setdefault(x, len(numbers)) for x in labels), np.int64, n)
    return inverse, len(numbers)


def _cluster_means(
    values: np.ndarray,  # (n, ...) one array
    clusters: Sequence[Any] | np.ndarray,
    n_resamples: int,
    seed: int,
) -> np.ndarray:  # (n_resamples,)
    """The mean over all values of each cluster resample, from per-cluster sums and counts."""
    n = values.shape[0]
    inverse, c = cluster_index(clusters, n)
    flat = values.reshape(n, -1).astype(np.float64)
    sums = np.bincount(inverse, weights=flat.sum(axis=1), minlength=c)  # (C,)
    counts = np.bincount(inverse, minlength=c).astype(np.float64) * flat.shape[1]  # (C,)
    batch = max(1, RESAMPLE_CHUNK_ELEMENTS // c)
    rng = np.random.default_rng(seed)
    stats = np.empty(n_resamples, dtype=np.float64)
    for start in range(0, n_resamples, batch):
        b = min(batch, n_resamples - start)
        drawn = rng.integers(0, c, size=(b, c))  # (B, C) cluster numbers
        stats[start : start + b] = sums[drawn].sum(axis=1) / counts[drawn].sum(axis=1)
    return stats


def bootstrap_distribution(
    samples: ArrayLike | Sequence[ArrayLike],  # (n, ...) or several, paired by row
    statistic: Statistic | None = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    clusters: Sequence[Any] | np.ndarray | None = None,  # (n,) labels, e.g. speakers
) -> np.ndarray:  # (n_resamples,) the statistic of each resample
    """The statistic over ``n_resamples`` resamples of the rows of ``samples``.

    ``samples`` is one array or a sequence of arrays with the same number of rows ``n``;
    several arrays are resampled together (the same rows drawn from each), for statistics
    of paired values. ``statistic`` gets the resampled arrays, each ``(B, n, ...)``, and
    returns ``(B,)``; by default the mean of the single array over all but the first axis.
    ``clusters``: draw whole clusters instead of rows (see the module); then only the
    default statistic (the mean of one array) is available.
    """
    arrays = [samples] if isinstance(samples, Tensor | np.ndarray) else list(samples)
    arrays = [_as_numpy(a, "samples") for a in arrays]
    if not arrays or any(a.ndim == 0 for a in arrays):
        raise MetricError("samples must be one or more arrays with a first axis of samples")
    n = arrays[0].shape[0]
    if n == 0 or any(a.shape[0] != n for a in arrays):
        raise MetricError(
            f"samples must share a non-zero number of rows, got {[len(a) for a in arrays]}"
        )
    if n_resamples < 1:
        raise MetricError(f"n_resamples must be positive, got {n_resamples}")
    if statistic is None:
        if len(arrays) != 1:
            raise MetricError("several sample arrays need a statistic")
        statistic = mean_statistic
    if clusters is not None:
        if statistic is not mean_statistic or len(arrays) != 1:
            raise MetricError("a cluster bootstrap takes one array and the mean statistic")
        return _cluster_means(arrays[0], clusters, n_resamples, seed)

    per_resample = sum(a[0].size for a in arrays) * n  # values in one resample
    batch = max(1, RESAMPLE_CHUNK_ELEMENTS // max(per_resample, 1))
    rng = np.random.default_rng(seed)
    stats = np.empty(n_resamples, dtype=np.float64)
    for start in range(0, n_resamples, batch):
        b = min(batch, n_resamples - start)
        rows = rng.integers(0, n, size=(b, n))  # (B, n)
        out = np.asarray(statistic(*(a[rows] for a in arrays)), dtype=np.float64)
        if out.shape != (b,):
            raise MetricError(f"statistic must return shape ({b},), got {out.shape}")
        stats[start : start + b] = out
    return stats


def bootstrap_ci(
    samples: ArrayLike | Sequence[ArrayLike],  # (n, ...) or several, paired by row
    statistic: Statistic | None = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
    clusters: Sequence[Any] | np.ndarray | None = None,  # (n,) labels: resample clusters
) -> tuple[float, float]:
    """Percentile-bootstrap ``(low, high)`` interval of a statistic (default: the mean).

    See :func:`bootstrap_distribution` for ``samples`` and ``statistic``. Example: the CI of
    a mean angle is ``bootstrap_ci(angles)``; of a mean difference of paired values,
    ``bootstrap_ci((a, b), lambda a, b: (a - b).mean(1))``.
    """
    if not 0.0 < confidence < 1.0:
        raise MetricError(f"confidence must lie in (0, 1), got {confidence}")
    stats = bootstrap_distribution(samples, statistic, n_resamples, seed, clusters)
    alpha = 1.0 - confidence
    low, high = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def recall_ci(
    hits: ArrayLike,  # (N,) or (N, R) bool, whether each query (in each pool) hit
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
    clusters: Sequence[Any] | np.ndarray | None = None,  # (N,) each query's speaker
) -> tuple[float, float]:
    """Percentile-bootstrap CI of a recall from per-query hit indicators.

    Queries are resampled; with ``(N, R)`` hits (a query in ``R`` pools, see
    :func:`~speech2face.metrics.retrieval.pooled_ranks`) a query's ``R`` hits stay
    together, so the interval reflects the ``N`` independent queries, not ``N * R``.
    """
    h = _as_numpy(hits, "hits").astype(np.float64)
    if h.ndim not in (1, 2):
        raise MetricError(f"hits must have shape (N,) or (N, R), got {h.shape}")
    return bootstrap_ci(h, None, n_resamples, confidence, seed, clusters)


def recall_cis(
    ranks: ArrayLike,  # (N,) or (N, R) int, 1-based ranks of the true items
    ks: Sequence[int],
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
    clusters: Sequence[Any] | np.ndarray | None = None,  # (N,) each query's speaker
) -> dict[int, tuple[float, float]]:
    """``{k: recall@k CI}`` from ranks; every k uses the same resamples of the queries (of
    the speakers with ``clusters``)."""
    r = _as_numpy(ranks, "ranks")
    return {k: recall_ci(r <= k, n_resamples, confidence, seed, clusters) for k in ks}

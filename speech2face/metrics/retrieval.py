"""Retrieval of the true face from a predicted feature: ranks and recall@K.

The paper ranks each predicted feature's true face feature among the
5,000 test faces by cosine, L2 or L1 distance and reports recall@K: the fraction of queries
whose true item is among the K nearest. :func:`recall_at_k` computes exactly that;
:func:`pooled_recall_at_k` ranks each query among a random pool of identities instead (the
SF2F protocol, pools of 100).

**Ties are pessimistic and deterministic**: the rank of the true item ``t`` of query ``i``
is ``1 + #{j != t : score(i, j) >= score(i, t)}``, so a gallery item scored exactly as the
true one counts as ranked *before* it, whatever the gallery order. A gallery with two
identical copies of the true item therefore never gives recall@1 (rank 2). A metric that
maps every item to the same score gives rank ``M``, never a lucky 1.

Scores are computed in the features' floating dtype (integer features become float32), on
the device of ``queries``, ``QUERY_CHUNK_ELEMENTS`` scores at a time, so memory stays
bounded for any ``N`` (5,000 x 5,000 x 4,096 needs about 64 MiB of scores beyond the
inputs). Cosine and L2 cost one matrix product per chunk; L1 has no such form
(``torch.cdist(p=1)``: on a CPU about 1.5 times SciPy's ``cdist`` time and some 30 times
the L2 time). Two items tie only when their computed scores are bitwise equal; pass
float64 features when exact ties between different vectors matter (in float32, distances
that agree to float32 precision may order either way).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from speech2face.metrics._common import (
    ArrayLike,
    MetricError,
    as_features,
    as_index,
    as_tensor,
    check_same_dim,
)

Metric = Literal["cosine", "l2", "l1"]
METRICS: tuple[str, ...] = get_args(Metric)
DEFAULT_KS: tuple[int, ...] = (1, 2, 5, 10)  # the paper's retrieval table
SF2F_POOL_SIZE = 100  # identities per pool in SF2F's recall@K
# The paper's recall@K in percent (predicted feature -> true face among 5,000 test faces).
PAPER_RETRIEVAL = {
    "3s": {
        "l2": {1: 5.86, 2: 10.02, 5: 18.98, 10: 28.92},
        "l1": {1: 6.22, 2: 9.92, 5: 18.94, 10: 28.70},
        "cosine": {1: 8.54, 2: 13.64, 5: 24.80, 10: 38.54},
    },
    "6s": {
        "l2": {1: 8.28, 2: 13.66, 5: 24.66, 10: 35.84},
        "l1": {1: 8.34, 2: 13.70, 5: 24.66, 10: 36.22},
        "cosine": {1: 10.92, 2: 17.00, 5: 30.60, 10: 45.82},
    },
}
PAPER_POOL_SIZE = 5000
QUERY_CHUNK_ELEMENTS = 1 << 24  # scores held at once: 16 Mi (64 MiB in float32)
POOL_DRAW_ELEMENTS = 1 << 22  # random keys held at once while drawing pools (32 MiB)
NORM_EPS = 1e-12  # an all-zero feature normalises to zero (cosine 0 with everything)


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise MetricError(f"metric must be one of {METRICS}, got {metric!r}")


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1:
        raise MetricError(f"ks must be positive integers, got {ks}")
    return ks


def _prepare(queries: ArrayLike, gallery: ArrayLike, metric: str) -> tuple[Tensor, Tensor]:
    """Both feature sets on the queries' device in one dtype, normalised for cosine."""
    _check_metric(metric)
    q = as_features(queries, "queries")
    g = as_features(gallery, "gallery")
    check_same_dim(q, g, "queries and gallery")
    if g.shape[0] == 0:
        raise MetricError("gallery is empty")
    dtype = torch.promote_types(q.dtype, g.dtype)
    q, g = q.to(dtype), g.to(device=q.device, dtype=dtype)
    if metric == "cosine":
        q, g = F.normalize(q, dim=1, eps=NORM_EPS), F.normalize(g, dim=1, eps=NORM_EPS)
    return q, g


def _chunks(n: int, m: int) -> Iterator[slice]:
    """Row slices of an ``(n, m)`` score matrix, ``QUERY_CHUNK_ELEMENTS`` scores each."""
    rows = max(1, QUERY_CHUNK_ELEMENTS // max(m, 1))
    for start in range(0, n, rows):
        yield slice(start, min(start + rows, n))


def _scores(
    q: Tensor,  # (n, D), prepared by _prepare
    g: Tensor,  # (M, D), prepared by _prepare
    g_sq: Tensor | None,  # (M,) squared norms of g, for "l2"
    metric: str,
) -> Tensor:  # (n, M), higher = closer
    """Scores that order the gallery like the metric does, for one chunk of queries.

    cosine: the cosine similarity. l2: ``2 q.g - |g|^2``, which is ``|q|^2 - |q - g|^2``, so
    it orders items like the L2 distance (one matrix product; ``|q|^2`` is the same for the
    whole row and left out). l1: minus the L1 distance.
    """
    if metric == "cosine":
        s = q @ g.T
    elif metric == "l2":
        assert g_sq is not None
        s = torch.addmm(g_sq.neg().unsqueeze(0), q, g.T, alpha=2.0)
    else:
        s = torch.cdist(q, g, p=1.0).neg_()
    if not bool(torch.isfinite(s).all()):
        raise MetricError("features too large to score: non-finite distances")
    return s


def retrieval_ranks(
    queries: ArrayLike,  # (N, D) predicted features
    gallery: ArrayLike,  # (M, D) true features
    targets: ArrayLike,  # (N,) int, index in the gallery of each query's true item
    metric: Metric = "cosine",
) -> Tensor:  # (N,) int64, 1-based rank of each query's true item, on the CPU
    """Rank of each query's true item in the whole gallery (1 = nearest), ties pessimistic.

    ``rank[i] = 1 + #{j != targets[i] : score(i, j) >= score(i, targets[i])}`` where the
    score is the cosine similarity, or minus the L2 / L1 distance.
    """
    q, g = _prepare(queries, gallery, metric)
    t = as_index(targets, "targets", q.shape[0], g.shape[0]).to(q.device)
    g_sq = g.square().sum(1) if metric == "l2" else None
    ranks = torch.empty(q.shape[0], dtype=torch.long)
    for rows in _chunks(q.shape[0], g.shape[0]):
        s = _scores(q[rows], g, g_sq, metric)  # (n, M)
        true = s.gather(1, t[rows, None])  # (n, 1)
        # The true item counts itself (true >= true): that is the 1 of the 1-based rank.
        ranks[rows] = (s >= true).sum(1).cpu()
    return ranks


def nearest(
    queries: ArrayLike,  # (N, D) predicted features
    gallery: ArrayLike,  # (M, D) true features
    metric: Metric = "cosine",
) -> Tensor:  # (N,) int64, on the CPU
    """Index of the gallery item nearest each query (the first of equally near ones)."""
    q, g = _prepare(queries, gallery, metric)
    g_sq = g.square().sum(1) if metric == "l2" else None
    found = torch.empty(q.shape[0], dtype=torch.long)
    for rows in _chunks(q.shape[0], g.shape[0]):
        found[rows] = _scores(q[rows], g, g_sq, metric).argmax(1).cpu()
    return found


def nearest_label_agreement(
    queries: ArrayLike,  # (N, D) predicted features
    gallery: ArrayLike,  # (M, D) true features
    query_labels: Sequence[Any],  # (N,) e.g. the speaker's gender; None: unknown
    gallery_labels: Sequence[Any],  # (M,) the label of each gallery face
    metric: Metric = "cosine",
) -> tuple[float, int]:
    """Share of queries whose nearest gallery face carries the query's label (the paper's
    attribute agreement, with the nearest true face standing in for a portrait), and how
    many queries counted: those whose label and whose nearest face's label are known."""
    if len(query_labels) != as_features(queries, "queries").shape[0]:
        raise MetricError("one label per query is needed")
    if len(gallery_labels) != as_features(gallery, "gallery").shape[0]:
        raise MetricError("one label per gallery item is needed")
    hits = counted = 0
    for label, index in zip(query_labels, nearest(queries, gallery, metric).tolist(), strict=True):
        other = gallery_labels[index]
        if label is None or other is None:
            continue
        counted += 1
        hits += label == other
    return (hits / counted if counted else float("nan")), counted


def recall_from_ranks(
    ranks: ArrayLike,  # (N,) or (N, R) int, 1-based ranks
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[int, float]:
    """``{k: fraction of ranks <= k}`` over all entries of ``ranks``."""
    ks = _check_ks(ks)
    r = as_tensor(ranks, "ranks")
    if r.numel() == 0:
        raise MetricError("no ranks to compute recall from")
    return {k: float((r <= k).double().mean()) for k in ks}


def recall_at_k(
    queries: ArrayLike,  # (N, D) predicted features
    gallery: ArrayLike,  # (M, D) true features
    targets: ArrayLike,  # (N,) int, index in the gallery of each query's true item
    ks: Sequence[int] = DEFAULT_KS,
    metric: Metric = "cosine",
) -> dict[int, float]:
    """Recall@K in [0, 1] of retrieving each query's true item from the whole gallery.

    The paper's protocol with ``gallery`` the 5,000 true test features and
    ``targets = arange(5000)``. Ties count against the query (see the module docstring);
    ``k >= M`` gives 1. Chance level: :func:`chance_recall`.
    """
    ks = _check_ks(ks)
    return recall_from_ranks(retrieval_ranks(queries, gallery, targets, metric), ks)


def chance_recall(k: int, pool_size: int) -> float:
    """Expected recall@k of a random ranking of ``pool_size`` items: ``k / pool_size``
    (capped at 1 when ``k >= pool_size``)."""
    if k < 1 or pool_size < 1:
        raise MetricError(f"k and pool_size must be positive, got k={k}, pool_size={pool_size}")
    return min(k, pool_size) / pool_size


def _identity_codes(
    labels: ArrayLike | None,  # (M,) identity of each gallery item, or None
    m: int,
) -> np.ndarray:  # (M,) int64 codes in [0, U)
    if labels is None:
        return np.arange(m, dtype=np.int64)
    values = labels.cpu().numpy() if isinstance(labels, Tensor) else np.asarray(labels)
    if values.shape != (m,):
        raise MetricError(f"labels must have shape ({m},), got {values.shape}")
    return np.unique(values, return_inverse=True)[1].reshape(m).astype(np.int64)


def draw_pools(
    targets: ArrayLike,  # (N,) int, index in the gallery of each query's true item
    num_gallery: int,
    pool_size: int = SF2F_POOL_SIZE,
    seed: int = 0,
    num_pools: int = 1,
    labels: ArrayLike | None = None,  # (M,) identity of each gallery item
) -> np.ndarray:  # (N, num_pools, pool_size) int64 gallery indices, [..., 0] the true item
    """Random retrieval pools: each query's true item and ``pool_size - 1`` distractors.

    For query ``i`` and each of its ``num_pools`` pools, independently:

    1. ``pool_size - 1`` identities are drawn uniformly *without replacement* from all
       identities except the one of the true item ``targets[i]`` (each identity is equally
       likely, however many gallery items it has);
    2. for each drawn identity, one of its gallery items is drawn uniformly.

    So a pool holds ``pool_size`` different identities, the true item first, and never
    another item of the query's identity. An identity is ``labels[j]`` (any values
    ``numpy.unique`` can sort: speaker ids, names); without ``labels`` every gallery item is
    its own identity, and distractors are simply ``pool_size - 1`` other gallery items.

    Deterministic for a given ``seed`` and inputs (NumPy's PCG64, with separate streams for
    the identity and the item draws, so the result does not depend on internal chunking).
    Needs ``2 <= pool_size <=`` the number of identities.
    """
    if num_gallery < 1:
        raise MetricError("gallery is empty")
    codes = _identity_codes(labels, num_gallery)
    t = as_index(targets, "targets", None, num_gallery).cpu().numpy()
    n_ids = int(codes.max()) + 1
    if not 2 <= pool_size <= n_ids:
        raise MetricError(f"pool_size must lie in [2, {n_ids}] (the identities), got {pool_size}")
    if num_pools < 1:
        raise MetricError(f"num_pools must be positive, got {num_pools}")
    order = np.argsort(codes, kind="stable")  # gallery items grouped by identity
    counts = np.bincount(codes, minlength=n_ids)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    id_stream, item_stream = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2)
    )

    rows = np.repeat(codes[t], num_pools)  # (N * num_pools,) identity of each pool's query
    n_distractors = pool_size - 1
    picked = np.empty((rows.size, n_distractors), dtype=np.int64)
    step = max(1, POOL_DRAW_ELEMENTS // (n_ids - 1))
    for start in range(0, rows.size, step):
        own = rows[start : start + step, None]  # (n, 1)
        keys = id_stream.random((own.shape[0], n_ids - 1))  # (n, U - 1)
        # The n_distractors smallest of U - 1 i.i.d. keys: a uniform subset of that size.
        chosen = np.argpartition(keys, n_distractors - 1, axis=1)[:, :n_distractors]
        picked[start : start + step] = chosen + (chosen >= own)  # skip the own identity
    offsets = np.floor(item_stream.random(picked.shape) * counts[picked]).astype(np.int64)
    distractors = order[starts[picked] + offsets]  # (N * num_pools, pool_size - 1)
    pools = np.concatenate((np.repeat(t, num_pools)[:, None], distractors), axis=1)
    return pools.reshape(t.size, num_pools, pool_size)


def pooled_ranks(
    queries: ArrayLike,  # (N, D) predicted features
    gallery: ArrayLike,  # (M, D) true features
    targets: ArrayLike,  # (N,) int, index in the gallery of each query's true item
    pool_size: int = SF2F_POOL_SIZE,
    metric: Metric = "cosine",
    seed: int = 0,
    num_pools: int = 1,
    labels: ArrayLike | None = None,  # (M,) identity of each gallery item
) -> Tensor:  # (N, num_pools) int64, 1-based rank of the true item within each pool
    """Rank of each query's true item within each of its random pools (see
    :func:`draw_pools`), ties pessimistic as in :func:`retrieval_ranks`."""
    q, g = _prepare(queries, gallery, metric)
    t = as_index(targets, "targets", q.shape[0], g.shape[0])
    pools = torch.from_numpy(draw_pools(t, g.shape[0], pool_size, seed, num_pools, labels)).to(
        q.device
    )  # (N, R, P)
    g_sq = g.square().sum(1) if metric == "l2" else None
    ranks = torch.empty((q.shape[0], num_pools), dtype=torch.long)
    for rows in _chunks(q.shape[0], g.shape[0]):
        s = _scores(q[rows], g, g_sq, metric)  # (n, M)
        pool_s = s.gather(1, pools[rows].flatten(1)).view(-1, num_pools, pool_size)  # (n, R, P)
        # Column 0 is the true item; it counts itself, giving the 1 of the 1-based rank.
        ranks[rows] = (pool_s >= pool_s[:, :, :1]).sum(2).cpu()
    return ranks


def pooled_recall_at_k(
    queries: ArrayLike,  # (N, D) predicted features
    gallery: ArrayLike,  # (M, D) true features
    targets: ArrayLike,  # (N,) int, index in the gallery of each query's true item
    pool_size: int = SF2F_POOL_SIZE,
    ks: Sequence[int] = DEFAULT_KS,
    metric: Metric = "cosine",
    seed: int = 0,
    num_pools: int = 1,
    labels: ArrayLike | None = None,  # (M,) identity of each gallery item
) -> dict[int, float]:
    """Recall@K in [0, 1] of each query's true item among ``pool_size`` identities.

    Each query is ranked among its true item and ``pool_size - 1`` distractors of other
    identities drawn at random (:func:`draw_pools`), ``num_pools`` times with independent
    pools; the result is the mean hit rate over all ``N * num_pools`` (query, pool) pairs.
    The pools depend only on ``targets``, ``labels``, ``pool_size``, ``num_pools`` and
    ``seed``, so every metric is scored on the same pools. Chance level:
    ``chance_recall(k, pool_size)``.

    SF2F's published numbers use pools of 100 identities; its released evaluator takes one
    (averaged) query per identity and fixed consecutive blocks of 100 identities rather than
    random pools: for that variant, call :func:`recall_at_k` on each block and average.
    """
    ks = _check_ks(ks)
    ranks = pooled_ranks(queries, gallery, targets, pool_size, metric, seed, num_pools, labels)
    return recall_from_ranks(ranks, ks)

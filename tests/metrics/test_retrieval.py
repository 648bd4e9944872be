"""Retrieval ranks and recall@K against SciPy distances ranked with a plain sort."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from speech2face.metrics import (
    METRICS,
    MetricError,
    chance_recall,
    draw_pools,
    pooled_ranks,
    pooled_recall_at_k,
    recall_at_k,
    recall_from_ranks,
    retrieval_ranks,
)
from speech2face.metrics import retrieval as retrieval_module
from tests.metrics import reference

KS = (1, 2, 5, 10)
BINOMIAL_SIGMAS = 4.0  # tolerance of chance-level checks, in binomial standard deviations


def gaussian(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    return rng.standard_normal((n, d))


def with_ties(rng: np.random.Generator, n: int = 40, m: int = 60, d: int = 8):
    """Gaussian features where some gallery items copy (or double, an exact cosine tie)
    another item, among them several true items."""
    gallery = gaussian(rng, m, d)
    for src, dst in [(0, 1), (3, 7), (3, 8), (10, 11), (20, 50)]:
        gallery[dst] = gallery[src]
    gallery[30] = 2.0 * gallery[31]  # same direction: a cosine tie, not an L2/L1 one
    queries = gallery[rng.integers(0, m, n)] + 0.8 * gaussian(rng, n, d)
    targets = rng.integers(0, m, n)
    targets[:6] = [0, 1, 3, 7, 8, 31]
    return queries, gallery, targets


@pytest.mark.parametrize("metric", METRICS)
def test_ranks_match_the_brute_force_reference_with_ties(metric):
    rng = np.random.default_rng(0)
    queries, gallery, targets = with_ties(rng)
    got = retrieval_ranks(queries, gallery, targets, metric).numpy()
    np.testing.assert_array_equal(got, reference.ranks(queries, gallery, targets, metric))


@pytest.mark.parametrize("metric", ["l2", "l1"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
def test_many_exact_distance_ties_between_different_vectors(metric, dtype):
    # Small integer features: many different gallery items at exactly the same L2 / L1
    # distance from a query; every dtype computes these integers exactly.
    rng = np.random.default_rng(1)
    gallery = rng.integers(-2, 3, (80, 5)).astype(dtype)
    queries = rng.integers(-2, 3, (50, 5)).astype(dtype)
    targets = rng.integers(0, 80, 50)
    want = reference.ranks(queries, gallery, targets, metric)
    d = reference.distances(queries, gallery, metric)
    assert sum((d[i] == d[i, t]).sum() > 1 for i, t in enumerate(targets)) > 10  # ties galore
    np.testing.assert_array_equal(retrieval_ranks(queries, gallery, targets, metric), want)


def test_a_duplicated_true_item_is_never_ranked_first():
    gallery = np.eye(4)
    gallery = np.concatenate([gallery, gallery[:1]])  # item 4 copies item 0
    for metric in METRICS:
        ranks = retrieval_ranks(gallery[[0, 4]], gallery, np.array([0, 4]), metric)
        assert ranks.tolist() == [2, 2]
        assert recall_at_k(gallery[:1], gallery, np.array([0]), (1, 2), metric) == {1: 0.0, 2: 1.0}


def test_constant_scores_give_the_last_rank():
    gallery = np.ones((7, 3))
    assert retrieval_ranks(np.ones((2, 3)), gallery, np.array([0, 6]), "l2").tolist() == [7, 7]


@pytest.mark.parametrize("metric", METRICS)
def test_recall_matches_reference_ranks(metric):
    rng = np.random.default_rng(2)
    queries, gallery, targets = with_ties(rng, n=70)
    ranks = reference.ranks(queries, gallery, targets, metric)
    want = {k: float(np.mean(ranks <= k)) for k in KS}
    got = recall_at_k(torch.from_numpy(queries), torch.from_numpy(gallery), targets, KS, metric)
    assert got == pytest.approx(want, abs=1e-12)
    assert recall_from_ranks(ranks, KS) == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize("metric", METRICS)
def test_identical_queries_and_gallery_give_recall_one(metric):
    features = torch.randn(300, 64, generator=torch.Generator().manual_seed(3))
    recalls = recall_at_k(features, features, torch.arange(300), KS, metric)
    assert recalls == {k: 1.0 for k in KS}


@pytest.mark.parametrize("metric", METRICS)
def test_random_features_are_at_chance(metric):
    rng = np.random.default_rng(4)
    n = m = 2000
    queries, gallery = gaussian(rng, n, 16).astype(np.float32), gaussian(rng, m, 16)
    ks = (1, 10, 100, 500)
    recalls = recall_at_k(queries, gallery, np.arange(n), ks, metric)
    for k in ks:
        p = chance_recall(k, m)
        assert abs(recalls[k] - p) <= BINOMIAL_SIGMAS * math.sqrt(p * (1 - p) / n) + 1 / n, k


def test_chunking_does_not_change_the_ranks(monkeypatch):
    rng = np.random.default_rng(5)
    queries, gallery, targets = with_ties(rng, n=50)
    whole = {metric: retrieval_ranks(queries, gallery, targets, metric) for metric in METRICS}
    monkeypatch.setattr(retrieval_module, "QUERY_CHUNK_ELEMENTS", 7 * gallery.shape[0])
    for metric in METRICS:
        torch.testing.assert_close(
            retrieval_ranks(queries, gallery, targets, metric), whole[metric]
        )


def test_mixed_dtypes_and_the_queries_device():
    rng = np.random.default_rng(6)
    queries, gallery, targets = with_ties(rng)
    got = retrieval_ranks(torch.from_numpy(queries).float(), gallery, torch.from_numpy(targets))
    np.testing.assert_array_equal(got, reference.ranks(queries, gallery, targets, "cosine"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metric": "cos"}, "metric must be one of"),
        ({"queries": np.zeros(4)}, r"shape \(N, D\)"),
        ({"gallery": np.zeros((5, 4))}, "differ in feature size"),
        ({"targets": np.array([0, 5])}, r"must lie in \[0, 5\)"),
        ({"targets": np.array([0])}, r"shape \(2,\)"),
        ({"targets": np.array([0.0, 1.0])}, "integer indices"),
        ({"queries": np.array([[0.0, np.nan, 0.0]] * 2)}, "NaN or infinite"),
        ({"ks": (0, 1)}, "positive integers"),
    ],
)
def test_bad_inputs_say_what_is_wrong(kwargs, message):
    args = {
        "queries": np.zeros((2, 3)),
        "gallery": np.zeros((5, 3)),
        "targets": np.array([0, 1]),
        "ks": KS,
        "metric": "cosine",
    } | kwargs
    with pytest.raises(MetricError, match=message):
        recall_at_k(**args)


def test_chance_recall():
    assert chance_recall(1, 5000) == 1 / 5000
    assert chance_recall(10, 100) == 0.1
    assert chance_recall(200, 100) == 1.0
    with pytest.raises(MetricError):
        chance_recall(0, 100)


# --- pooled recall (SF2F protocol) -------------------------------------------------------


def labelled_gallery(rng: np.random.Generator, n_ids: int = 30, d: int = 8):
    """Gallery of 1 to 6 clips per identity (shuffled), one query per clip."""
    counts = rng.integers(1, 7, n_ids)
    counts[0], counts[1] = 1, 6
    labels = rng.permutation(np.repeat(np.arange(n_ids), counts))
    centres = gaussian(rng, n_ids, d)
    gallery = centres[labels] + 0.5 * gaussian(rng, labels.size, d)
    queries = gallery + 0.7 * gaussian(rng, labels.size, d)
    return queries, gallery, labels


def test_pools_hold_pool_size_distinct_identities_and_never_the_query_identity():
    rng = np.random.default_rng(7)
    _, gallery, labels = labelled_gallery(rng)
    names = np.array([f"id{label:05d}" for label in labels])  # any sortable labels work
    targets = np.arange(labels.size)
    pools = draw_pools(targets, labels.size, pool_size=10, seed=1, num_pools=5, labels=names)
    assert pools.shape == (labels.size, 5, 10)
    assert (pools[:, :, 0] == targets[:, None]).all()
    assert pools.min() >= 0 and pools.max() < labels.size
    pool_ids = labels[pools]  # (N, R, P)
    assert (pool_ids[:, :, 1:] != labels[targets][:, None, None]).all()
    assert all(len(set(pool)) == 10 for pool in pool_ids.reshape(-1, 10))


def test_pools_draw_identities_uniformly_not_by_clip_count():
    rng = np.random.default_rng(8)
    _, gallery, labels = labelled_gallery(rng)
    targets = np.zeros(4000, dtype=np.int64)  # one query, its identity excluded
    pools = draw_pools(targets, labels.size, pool_size=5, seed=0, labels=labels)
    freq = np.bincount(labels[pools[:, 0, 1:]].ravel(), minlength=30) / pools[:, 0, 1:].size
    freq = np.delete(freq, labels[0])
    p = 1 / (30 - 1)
    sigma = math.sqrt(p * (1 - p) / pools[:, 0, 1:].size)
    assert np.abs(freq - p).max() < 5 * sigma  # identities with 1 and 6 clips alike


def test_pools_without_labels_are_other_gallery_items():
    pools = draw_pools(np.arange(50), 50, pool_size=50, seed=3, num_pools=2)
    for pool in pools.reshape(-1, 50):
        assert sorted(pool.tolist()) == list(range(50))  # a full pool: every item once
    small = draw_pools(np.arange(50), 50, pool_size=8, seed=3, num_pools=2)
    assert (small[:, :, 1:] != np.arange(50)[:, None, None]).all()


def test_pools_are_deterministic_for_a_seed_and_independent_of_chunking(monkeypatch):
    rng = np.random.default_rng(9)
    _, gallery, labels = labelled_gallery(rng)
    targets = np.arange(labels.size)
    first = draw_pools(targets, labels.size, 10, seed=4, num_pools=3, labels=labels)
    np.testing.assert_array_equal(
        first, draw_pools(targets, labels.size, 10, seed=4, num_pools=3, labels=labels)
    )
    assert not np.array_equal(
        first, draw_pools(targets, labels.size, 10, seed=5, num_pools=3, labels=labels)
    )
    monkeypatch.setattr(retrieval_module, "POOL_DRAW_ELEMENTS", 50)
    np.testing.assert_array_equal(
        first, draw_pools(targets, labels.size, 10, seed=4, num_pools=3, labels=labels)
    )


@pytest.mark.parametrize("metric", METRICS)
def test_pooled_ranks_match_the_reference_within_each_pool(metric, monkeypatch):
    rng = np.random.default_rng(10)
    queries, gallery, labels = labelled_gallery(rng)
    for i in range(0, 40, 2):  # item i copies an item of another identity: ties in pools
        gallery[i] = gallery[np.flatnonzero(labels != labels[i])[i]]
    targets = np.arange(labels.size)
    pools = draw_pools(targets, labels.size, 12, seed=2, num_pools=3, labels=labels)
    want = reference.pooled_ranks(queries, gallery, pools, metric)
    in_pools = gallery[pools]  # (N, R, P, D)
    assert (in_pools[:, :, 1:] == in_pools[:, :, :1]).all(-1).any(-1).sum() > 5
    monkeypatch.setattr(retrieval_module, "QUERY_CHUNK_ELEMENTS", 13 * labels.size)
    got = pooled_ranks(queries, gallery, targets, 12, metric, seed=2, num_pools=3, labels=labels)
    np.testing.assert_array_equal(got, want)
    recalls = pooled_recall_at_k(
        queries, gallery, targets, 12, KS, metric, seed=2, num_pools=3, labels=labels
    )
    assert recalls == pytest.approx({k: float(np.mean(want <= k)) for k in KS}, abs=1e-12)


def test_pooled_recall_of_random_features_is_at_chance():
    rng = np.random.default_rng(11)
    n, pool = 3000, 20
    queries, gallery = gaussian(rng, n, 16), gaussian(rng, n, 16)
    ks = (1, 5, 10)
    recalls = pooled_recall_at_k(queries, gallery, np.arange(n), pool, ks, "cosine", seed=0)
    for k in ks:
        p = chance_recall(k, pool)
        assert abs(recalls[k] - p) <= BINOMIAL_SIGMAS * math.sqrt(p * (1 - p) / n), k


def test_pooled_recall_is_deterministic_and_identical_features_score_one():
    rng = np.random.default_rng(12)
    queries, gallery, labels = labelled_gallery(rng)
    targets = np.arange(labels.size)
    args = (queries, gallery, targets, 10, KS, "l2")
    once = pooled_recall_at_k(*args, seed=3, num_pools=4, labels=labels)
    assert once == pooled_recall_at_k(*args, seed=3, num_pools=4, labels=labels)
    assert pooled_recall_at_k(gallery, gallery, targets, 10, KS, labels=labels)[1] == 1.0


def test_pool_larger_than_the_identities_is_refused():
    labels = np.array([0, 0, 1, 1, 2])
    with pytest.raises(MetricError, match=r"pool_size must lie in \[2, 3\]"):
        draw_pools(np.array([0]), 5, pool_size=4, labels=labels)
    with pytest.raises(MetricError, match="labels must have shape"):
        draw_pools(np.array([0]), 5, pool_size=2, labels=labels[:4])
    with pytest.raises(MetricError, match="num_pools"):
        draw_pools(np.array([0]), 5, pool_size=2, num_pools=0)


@pytest.mark.gpu
@pytest.mark.parametrize("metric", METRICS)
def test_cuda_features_give_the_cpu_ranks(metric):
    rng = np.random.default_rng(13)
    queries, gallery, labels = labelled_gallery(rng)
    targets = np.arange(labels.size)
    q, g = torch.from_numpy(queries).cuda(), torch.from_numpy(gallery).cuda()
    want = retrieval_ranks(queries, gallery, targets, metric)
    torch.testing.assert_close(
        retrieval_ranks(q, gallery, torch.from_numpy(targets).cuda(), metric), want
    )
    args = (targets, 10, metric, 1, 2, labels)
    torch.testing.assert_close(pooled_ranks(q, g, *args), pooled_ranks(queries, gallery, *args))


def test_nearest_matches_a_brute_force_argmin():
    from scipy.spatial.distance import cdist

    from speech2face.metrics import nearest

    rng = np.random.default_rng(5)
    queries, gallery = rng.normal(size=(40, 8)), rng.normal(size=(30, 8))
    for metric, name in (("cosine", "cosine"), ("l2", "euclidean"), ("l1", "cityblock")):
        expected = cdist(queries, gallery, name).argmin(1)
        np.testing.assert_array_equal(nearest(queries, gallery, metric).numpy(), expected)


def test_nearest_label_agreement_counts_known_labels_only():
    from speech2face.metrics import MetricError, nearest_label_agreement

    gallery = np.eye(4)
    queries = np.array([[1, 0.1, 0, 0], [0, 1, 0.2, 0], [0, 0, 1, 0], [0, 0, 0.1, 1]])
    labels = ["f", "m", None, "m"]
    share, counted = nearest_label_agreement(queries, gallery, ["f", "f", "m", "m"], labels)
    assert counted == 3 and share == pytest.approx(2 / 3)  # query 2's nearest face is unknown
    with pytest.raises(MetricError):
        nearest_label_agreement(queries, gallery, ["f"], labels)

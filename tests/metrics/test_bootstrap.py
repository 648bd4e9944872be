"""Percentile-bootstrap CIs: coverage, width, determinism, SciPy agreement, recall CIs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from speech2face.metrics import (
    MetricError,
    bootstrap_ci,
    bootstrap_distribution,
    recall_ci,
    recall_cis,
)
from speech2face.metrics import bootstrap as bootstrap_module

Z_95 = 1.959964  # two-sided 95 % normal quantile
N = 2000


def test_ci_of_a_normal_mean_covers_zero_with_the_expected_width():
    covered = 0
    expected = 2 * Z_95 / math.sqrt(N)
    for seed in range(20):
        x = np.random.default_rng(seed).standard_normal(N)
        low, high = bootstrap_ci(x, seed=seed)
        assert low < x.mean() < high
        assert high - low == pytest.approx(expected, rel=0.12)
        covered += low <= 0.0 <= high
    assert covered >= 16  # 95 % coverage: P(fewer than 16 of 20) < 0.3 %


def test_deterministic_for_a_seed_and_independent_of_chunking(monkeypatch):
    x = torch.randn(501, generator=torch.Generator().manual_seed(0))
    once = bootstrap_ci(x, seed=7)
    assert once == bootstrap_ci(x.numpy(), seed=7)
    assert once != bootstrap_ci(x, seed=8)
    whole = bootstrap_distribution(x, seed=7)
    monkeypatch.setattr(bootstrap_module, "RESAMPLE_CHUNK_ELEMENTS", 501 * 3)  # 3 per chunk
    np.testing.assert_array_equal(bootstrap_distribution(x, seed=7), whole)


def test_agrees_with_scipy_percentile_bootstrap():
    rng = np.random.default_rng(1)
    x = rng.exponential(2.0, 400)
    ours = bootstrap_ci(x, n_resamples=4000, confidence=0.9, seed=0)
    ref = stats.bootstrap(
        (x,), np.mean, n_resamples=4000, confidence_level=0.9, method="percentile", rng=0
    ).confidence_interval
    width = ref.high - ref.low
    assert ours[0] == pytest.approx(ref.low, abs=0.05 * width)
    assert ours[1] == pytest.approx(ref.high, abs=0.05 * width)


def test_paired_statistic_resamples_rows_together():
    rng = np.random.default_rng(2)
    a = rng.standard_normal(300)
    b = a + 0.01 * rng.standard_normal(300)  # strongly paired
    low, high = bootstrap_ci((a, b), lambda a, b: (a - b).mean(axis=1), seed=0)
    assert high - low < 0.01  # unpaired resampling would give about 0.2


def test_recall_ci_from_hits_and_ranks():
    rng = np.random.default_rng(3)
    hits = rng.random(N) < 0.3
    low, high = recall_ci(hits, seed=0)
    p = hits.mean()
    assert low < p < high
    assert high - low == pytest.approx(2 * Z_95 * math.sqrt(p * (1 - p) / N), rel=0.12)
    # a query's hits in R pools stay together: R identical copies change nothing
    assert recall_ci(np.repeat(hits[:, None], 5, axis=1), seed=0) == (low, high)
    ranks = rng.integers(1, 101, N)
    cis = recall_cis(ranks, (1, 5, 10, 50), seed=0)
    lows = [cis[k][0] for k in (1, 5, 10, 50)]
    assert lows == sorted(lows)
    assert cis[10] == recall_ci(ranks <= 10, seed=0)


def test_bad_inputs():
    with pytest.raises(MetricError, match="confidence"):
        bootstrap_ci(np.ones(5), confidence=1.5)
    with pytest.raises(MetricError, match="rows"):
        bootstrap_ci(np.ones(0))
    with pytest.raises(MetricError, match="rows"):
        bootstrap_ci((np.ones(3), np.ones(4)), lambda a, b: a.mean(1))
    with pytest.raises(MetricError, match="need a statistic"):
        bootstrap_ci((np.ones(3), np.ones(3)))
    with pytest.raises(MetricError, match="must return shape"):
        bootstrap_ci(np.ones(5), lambda x: x.mean())
    with pytest.raises(MetricError, match="hits must have shape"):
        recall_ci(np.ones((2, 2, 2), dtype=bool))


def _clustered(rng: np.random.Generator, speakers: int, per_speaker: int):
    """Segments of speakers whose values share a strong speaker effect (intra-class
    correlation 0.8): true mean 0."""
    effect = rng.normal(0.0, 2.0, speakers)  # variance 4
    noise = rng.normal(0.0, 1.0, (speakers, per_speaker))  # variance 1
    values = (effect[:, None] + noise).ravel()
    labels = np.repeat(np.arange(speakers), per_speaker)
    return values, labels


def test_cluster_bootstrap_covers_the_truth_where_the_row_bootstrap_does_not():
    # 300 simulated evaluations of 40 speakers with 5 strongly correlated segments each:
    # resampling segments ignores the speaker effect and its interval is too narrow.
    trials, rows_cover, clusters_cover, widths = 300, 0, 0, []
    for trial in range(trials):
        values, labels = _clustered(np.random.default_rng(trial), 40, 5)
        low, high = bootstrap_ci(values, n_resamples=400, seed=trial)
        rows_cover += low <= 0.0 <= high
        c_low, c_high = bootstrap_ci(values, n_resamples=400, seed=trial, clusters=labels)
        clusters_cover += c_low <= 0.0 <= c_high
        widths.append((c_high - c_low) / (high - low))
    # The design effect 1 + (m - 1) ICC = 4.2 widens the interval by about sqrt(4.2) = 2.05.
    assert np.median(widths) == pytest.approx(math.sqrt(1 + 4 * 0.8), rel=0.15)
    assert rows_cover / trials < 0.75  # about 0.67: far below the nominal 0.95
    # Percentile intervals from 40 clusters run a little short of nominal (about 0.93);
    # a binomial 300 draws at 0.95 falls below 0.90 with probability under 0.1 %.
    assert 0.90 <= clusters_cover / trials <= 0.99


def test_cluster_bootstrap_of_single_row_clusters_is_the_row_bootstrap():
    x = np.random.default_rng(3).standard_normal(97)
    rows = bootstrap_distribution(x, seed=5)
    clusters = bootstrap_distribution(x, seed=5, clusters=[f"s{i}" for i in range(97)])
    np.testing.assert_allclose(clusters, rows, rtol=1e-12)


def test_cluster_bootstrap_against_explicit_resamples():
    # Reference: draw speakers one resample at a time and average every segment they bring.
    rng = np.random.default_rng(4)
    labels = np.array([0, 0, 0, 1, 2, 2, 3, 3, 3, 3, 4])
    values = rng.standard_normal((len(labels), 2))
    ours = bootstrap_distribution(values, n_resamples=50, seed=9, clusters=labels)
    draws = np.random.default_rng(9).integers(0, 5, size=(50, 5))
    members = [np.flatnonzero(labels == c) for c in range(5)]
    reference = [values[np.concatenate([members[c] for c in d])].mean() for d in draws]
    np.testing.assert_allclose(ours, reference, rtol=1e-12)
    hits = (values[:, 0] > 0)[:, None] & np.ones((1, 3), bool)  # (N, R) pooled hits
    assert recall_ci(hits, clusters=labels) == bootstrap_ci(hits.astype(float), clusters=labels)
    with pytest.raises(MetricError, match="one label per row"):
        bootstrap_ci(values, clusters=labels[:-1])
    with pytest.raises(MetricError, match="mean statistic"):
        bootstrap_ci((values, values), lambda a, b: a.mean((1, 2)), clusters=labels)

"""Craniofacial measurements on hand-placed landmarks, Pearson r against scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from speech2face.metrics import MetricError
from speech2face.metrics.craniofacial import (
    CRANIOFACIAL_MEASUREMENTS,
    PAPER_CORRELATIONS,
    craniofacial_correlations,
    craniofacial_measurements,
    pearson,
    permutation_null,
    permutation_orders,
)

# Only the points the measurements read; the rest stay at the origin.
PLACED = {
    0: (0.0, 50.0),  # face width |0-16| = 100
    16: (100.0, 50.0),
    4: (10.0, 120.0),  # jaw width |4-12| = 80
    12: (90.0, 120.0),
    8: (50.0, 150.0),  # chin
    27: (50.0, 60.0),  # nasion
    31: (40.0, 95.0),  # alar points: nose width 20
    32: (45.0, 98.0),
    33: (50.0, 100.0),  # subnasale: nose height |27-33| = 40
    34: (55.0, 98.0),
    35: (60.0, 95.0),
    36: (20.0, 60.0),  # outer eye corners: |36-45| = 60
    45: (80.0, 60.0),
    39: (40.0, 60.0),  # inner eye corners: |39-42| = 20
    42: (60.0, 60.0),
    48: (35.0, 115.0),  # mouth corners: width 30
    54: (65.0, 115.0),
    50: (44.0, 110.0),  # upper lip crests
    52: (56.0, 110.0),
    51: (50.0, 109.0),  # upper lip top
    62: (50.0, 114.0),  # inner lips: stomion (50, 115)
    66: (50.0, 116.0),
    57: (50.0, 124.0),  # lower lip bottom
}
for index, point in zip(range(48, 60), [(35, 115), (40, 111), (44, 110), (50, 109), (56, 110),
                                        (60, 111), (65, 115), (60, 120), (56, 123), (50, 124),
                                        (44, 123), (40, 120)], strict=True):  # fmt: skip
    PLACED.setdefault(index, tuple(map(float, point)))


def face() -> np.ndarray:  # (1, 68, 2)
    points = np.zeros((1, 68, 2))
    for index, point in PLACED.items():
        points[0, index] = point
    return points


def shoelace(points) -> float:
    x, y = np.array(points, dtype=float).T
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)))


def test_hand_placed_face():
    values = {k: float(v[0]) for k, v in craniofacial_measurements(face()).items()}
    assert list(values) == list(CRANIOFACIAL_MEASUREMENTS) == list(PAPER_CORRELATIONS)
    lip_crest = np.hypot(4.0, 15.0)  # |31-50| = |(40,95)-(44,110)|, the same on the right
    expected = {
        "nasal_index": 100 * 20 / 40,
        "nose_width": 20.0,
        "vermilion_height_index": 100 * 5 / 8,  # |51-62| = 5, |66-57| = 8
        "nose_area": shoelace([PLACED[i] for i in (27, 31, 32, 33, 34, 35)]),
        "lateral_upper_lip_heights": lip_crest,
        "intercanthal_index": 100 * 20 / 60,
        "mandibular_index": 100 * 35 / 80,  # stomion (50, 115) to chin (50, 150)
        "mouth_face_width_index": 100 * 30 / 100,
        "labio_oral_region": shoelace([PLACED[i] for i in range(48, 60)]),
        "upper_lip_height": 15.0,  # subnasale (50, 100) to stomion
        "nose_height": 40.0,
        "jaw_width": 80.0,
    }
    assert values == pytest.approx(expected, rel=1e-12)
    assert values["nose_area"] == pytest.approx(405.0)  # by hand: 350 above y=95, 55 below


def test_scaling_a_face():
    base = craniofacial_measurements(face())
    scaled = craniofacial_measurements(face() * 2.5 + 7.0)  # larger, shifted
    for name in CRANIOFACIAL_MEASUREMENTS:
        power = 0 if name.endswith("index") else 2 if "area" in name or "region" in name else 1
        assert scaled[name][0] == pytest.approx(base[name][0] * 2.5**power, rel=1e-12)


@pytest.mark.parametrize("n", [3, 10, 200])
def test_pearson_matches_scipy(n):
    rng = np.random.default_rng(n)
    x = rng.normal(size=n)
    for y in (0.3 * x + rng.normal(size=n), -x + 0.1 * rng.normal(size=n), rng.normal(size=n)):
        r, p = pearson(x, y)
        reference = stats.pearsonr(x, y)
        assert r == pytest.approx(reference.statistic, abs=1e-12)
        assert p == pytest.approx(reference.pvalue, rel=1e-9, abs=1e-300)
    assert pearson(x, 2 * x + 1) == (pytest.approx(1.0), 0.0)
    assert all(np.isnan(v) for v in pearson(x, np.ones(n)))
    with pytest.raises(MetricError, match="same size"):
        pearson(x, x[:-1])


def test_equal_values_are_constant_though_their_mean_rounds():
    # Six equal measurements (a decoder's identical portraits) whose mean is 7e-15 off them:
    # no correlation and no null, not rounding noise correlated.
    constant = np.full(6, 59.97552518764168)
    assert constant.mean() != constant[0]
    x = np.random.default_rng(0).normal(size=6)
    assert all(np.isnan(v) for v in pearson(x, constant))
    assert all(np.isnan(v) for v in pearson(constant, x))
    assert all(np.isnan(v) for v in permutation_null(x, constant, 10))
    assert all(np.isnan(v) for v in permutation_null(constant, x, 10))


def test_correlations_against_a_random_pairing():
    rng = np.random.default_rng(0)
    faces = face().repeat(300, axis=0) + rng.normal(0.0, 1.5, size=(300, 68, 2))
    noisy = faces + rng.normal(0.0, 0.5, size=faces.shape)
    result = craniofacial_correlations(faces, noisy, n_random=20)
    assert list(result) == list(CRANIOFACIAL_MEASUREMENTS)
    for name, corr in result.items():
        ours = craniofacial_measurements(faces)[name]
        theirs = craniofacial_measurements(noisy)[name]
        assert corr.r == pytest.approx(stats.pearsonr(ours, theirs).statistic, abs=1e-12)
        assert corr.r > 0.5 and corr.p < 1e-10, name  # the same faces, slightly moved
        assert abs(corr.random_r) < 0.05, name  # shuffled pairs: nothing left
    identical = craniofacial_correlations(faces, faces, n_random=2)
    assert all(c.r == pytest.approx(1.0) for c in identical.values())


def test_bad_landmarks():
    with pytest.raises(MetricError, match=r"\(N, 68, 2\)"):
        craniofacial_measurements(np.zeros((2, 5, 2)))
    with pytest.raises(MetricError, match="non-finite"):
        craniofacial_measurements(np.full((1, 68, 2), np.nan))
    with pytest.raises(MetricError, match="zero-length"):
        craniofacial_measurements(np.zeros((1, 68, 2)))
    with pytest.raises(MetricError, match="same faces"):
        craniofacial_correlations(face().repeat(4, 0), face().repeat(5, 0))


def test_permutation_null_agrees_with_scipy():
    rng = np.random.default_rng(5)
    x = rng.standard_normal(30)
    y = 0.4 * x + rng.standard_normal(30)
    p, r95, mean_r = permutation_null(x, y, n_permutations=4000, seed=1)
    reference = stats.permutation_test(
        (x, y),
        lambda a, b: stats.pearsonr(a, b).statistic,
        permutation_type="pairings",
        n_resamples=4000,
        rng=2,
    ).pvalue
    assert p == pytest.approx(reference, abs=0.015)  # two Monte Carlo estimates of ~0.03
    # Under shuffles r is about normal with sd 1 / sqrt(n - 1): |r|'s 95th percentile ~0.36.
    assert r95 == pytest.approx(1.96 / np.sqrt(29), rel=0.1)
    assert abs(mean_r) < 0.01


def test_permutation_null_with_and_without_a_true_correlation():
    # Without one, the p-value is about uniform: 5 % of 300 data sets fall below 0.05.
    rejected = 0
    for seed in range(300):
        rng = np.random.default_rng(seed)
        p, _, _ = permutation_null(rng.standard_normal(40), rng.standard_normal(40), 199, seed)
        rejected += p <= 0.05
    assert 0.02 <= rejected / 300 <= 0.09  # binomial(300, 0.05): P(outside) < 1 %
    rng = np.random.default_rng(0)
    x = rng.standard_normal(40)
    y = 0.8 * x + 0.6 * rng.standard_normal(40)  # true r = 0.8
    p, r95, _ = permutation_null(x, y, 999, 0)
    assert p == pytest.approx(1 / 1000) and pearson(x, y)[0] > r95


def test_speaker_permutation_keeps_the_null_where_segment_shuffles_do_not():
    # 30 speakers, 4 segments each; x and y each carry an independent speaker effect, so
    # they are unrelated, but segments of one speaker look alike on both sides.
    speakers = np.repeat(np.arange(30), 4)
    rows_rejected = speakers_rejected = 0
    for seed in range(150):
        rng = np.random.default_rng(seed)
        x = rng.normal(0, 2, 30)[speakers] + rng.standard_normal(120)
        y = rng.normal(0, 2, 30)[speakers] + rng.standard_normal(120)
        rows_rejected += permutation_null(x, y, 199, seed)[0] <= 0.05
        speakers_rejected += permutation_null(x, y, 199, seed, clusters=speakers)[0] <= 0.05
    assert rows_rejected / 150 > 0.2  # segments shuffled: far too many false findings
    assert speakers_rejected / 150 <= 0.1  # about 0.05
    orders = permutation_orders(5, 3, 0, clusters=["a", "a", "b", "b", "c"])
    assert all(o[4] == 4 and sorted(o[:4]) == [0, 1, 2, 3] for o in orders)
    assert all((o[0], o[1]) in ((0, 1), (2, 3)) for o in orders)

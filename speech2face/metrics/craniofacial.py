"""Craniofacial measurements on dlib's 68 landmarks, and their correlation between two sets
of portraits (the paper's Table: F2F against S2F portraits), beside its permutation null.

The paper takes its measurements from the anthropometry of IBM's "Diversity in Faces"
(after Farkas) without giving formulas; these are this project's definitions on the
68-point layout (0-based indices; ``sto`` is the stomion, the midpoint of points 62 and 66).
Lengths are in pixels and areas in square pixels of the image the landmarks came from
(portraits of one decoder share one size), indices are ratios times 100:

================================  =========================================================
measurement                       formula
================================  =========================================================
``nasal_index``                   100 |31-35| / |27-33|  (nose width / nose height)
``nose_width``                    |31-35|  (alar points)
``vermilion_height_index``        100 |51-62| / |66-57|  (upper / lower vermilion height)
``nose_area``                     area of the polygon 27, 31, 32, 33, 34, 35
``lateral_upper_lip_heights``     (|31-50| + |35-52|) / 2  (alar base to the lip's crests)
``intercanthal_index``            100 |39-42| / |36-45|  (inner / outer eye corners)
``mandibular_index``              100 |sto-8| / |4-12|  (stomion to chin / jaw width)
``mouth_face_width_index``        100 |48-54| / |0-16|  (mouth width / face width)
``labio_oral_region``             area of the outer lip polygon 48 ... 59
``upper_lip_height``              |33-sto|  (subnasale to stomion)
``nose_height``                   |27-33|  (nasion to subnasale)
``jaw_width``                     |4-12|
================================  =========================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from speech2face.metrics._common import ArrayLike, MetricError, as_tensor

NUM_LANDMARKS = 68

# The paper's order (strongest correlation first in its table).
CRANIOFACIAL_MEASUREMENTS = (
    "nasal_index",
    "nose_width",
    "vermilion_height_index",
    "nose_area",
    "lateral_upper_lip_heights",
    "intercanthal_index",
    "mandibular_index",
    "mouth_face_width_index",
    "labio_oral_region",
    "upper_lip_height",
    "nose_height",
    "jaw_width",
)
# The paper's Pearson r between F2F and S2F portraits (1,000 test images); random: 0.02.
PAPER_CORRELATIONS = {
    "nasal_index": 0.38,
    "nose_width": 0.35,
    "vermilion_height_index": 0.29,
    "nose_area": 0.28,
    "lateral_upper_lip_heights": 0.26,
    "intercanthal_index": 0.21,
    "mandibular_index": 0.20,
    "mouth_face_width_index": 0.20,
    "labio_oral_region": 0.17,
    "upper_lip_height": 0.16,
    "nose_height": 0.14,
    "jaw_width": 0.11,
}
PAPER_RANDOM_CORRELATION = 0.02

NOSE_POLYGON = (27, 31, 32, 33, 34, 35)
OUTER_LIPS = tuple(range(48, 60))


def _as_landmarks(x: ArrayLike, name: str) -> np.ndarray:
    array = as_tensor(x, name).double().cpu().numpy()
    if array.ndim != 3 or array.shape[1:] != (NUM_LANDMARKS, 2):
        raise MetricError(f"{name} must be (N, {NUM_LANDMARKS}, 2), got {array.shape}")
    if not np.isfinite(array).all():
        raise MetricError(f"{name} holds non-finite coordinates")
    return array


def _distance(points: np.ndarray, a, b) -> np.ndarray:  # (N, 68, 2) -> (N,)
    pa = points[:, a] if isinstance(a, int) else a
    pb = points[:, b] if isinstance(b, int) else b
    return np.linalg.norm(pa - pb, axis=-1)


def _area(points: np.ndarray, indices: tuple[int, ...]) -> np.ndarray:  # -> (N,)
    """Shoelace area of the polygon through ``indices``, in order."""
    poly = points[:, list(indices)]  # (N, P, 2)
    x, y = poly[..., 0], poly[..., 1]
    return 0.5 * np.abs((x * np.roll(y, -1, axis=1) - np.roll(x, -1, axis=1) * y).sum(axis=1))


def _ratio(numerator: np.ndarray, denominator: np.ndarray, name: str) -> np.ndarray:
    if (denominator <= 0).any():
        raise MetricError(f"{name}: a face has a zero-length reference distance")
    return 100.0 * numerator / denominator


def craniofacial_measurements(
    landmarks: ArrayLike,  # (N, 68, 2) dlib's points, pixels
) -> dict[str, np.ndarray]:  # name -> (N,)
    """Every measurement of :data:`CRANIOFACIAL_MEASUREMENTS` for each face."""
    p = _as_landmarks(landmarks, "landmarks")
    stomion = (p[:, 62] + p[:, 66]) / 2
    nose_width = _distance(p, 31, 35)
    nose_height = _distance(p, 27, 33)
    jaw_width = _distance(p, 4, 12)
    values = {
        "nasal_index": _ratio(nose_width, nose_height, "nasal_index"),
        "nose_width": nose_width,
        "vermilion_height_index": _ratio(
            _distance(p, 51, 62), _distance(p, 66, 57), "vermilion_height_index"
        ),
        "nose_area": _area(p, NOSE_POLYGON),
        "lateral_upper_lip_heights": (_distance(p, 31, 50) + _distance(p, 35, 52)) / 2,
        "intercanthal_index": _ratio(
            _distance(p, 39, 42), _distance(p, 36, 45), "intercanthal_index"
        ),
        "mandibular_index": _ratio(_distance(p, stomion, 8), jaw_width, "mandibular_index"),
        "mouth_face_width_index": _ratio(
            _distance(p, 48, 54), _distance(p, 0, 16), "mouth_face_width_index"
        ),
        "labio_oral_region": _area(p, OUTER_LIPS),
        "upper_lip_height": _distance(p, 33, stomion),
        "nose_height": nose_height,
        "jaw_width": jaw_width,
    }
    return {name: values[name] for name in CRANIOFACIAL_MEASUREMENTS}


def _constant(values: np.ndarray) -> bool:
    """Whether every value is the same. Tested directly: the mean of equal values need not
    equal them (``[59.97552518764168] * 6`` averages 7e-15 off), which would leave
    rounding noise to correlate."""
    return bool((values == values[0]).all())


def pearson(x: ArrayLike, y: ArrayLike) -> tuple[float, float]:
    """Pearson's r and its two-sided p-value (the t test with n - 2 degrees of freedom).

    A constant input has no correlation: ``(nan, nan)``.
    """
    a = np.asarray(x, dtype=np.float64).ravel()
    b = np.asarray(y, dtype=np.float64).ravel()
    if a.shape != b.shape or a.size < 3:
        raise MetricError(
            f"pearson needs two samples of the same size >= 3, got {a.size}, {b.size}"
        )
    if _constant(a) or _constant(b):
        return float("nan"), float("nan")
    a, b = a - a.mean(), b - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    if denominator == 0:
        return float("nan"), float("nan")
    r = float(np.clip((a * b).sum() / denominator, -1.0, 1.0))
    dof = a.size - 2
    if abs(r) == 1.0:
        return r, 0.0
    # P(|T| >= |t|) for Student's t with dof degrees of freedom, as a regularised beta.
    t2 = r * r * dof / (1.0 - r * r)
    from scipy import special  # here: importing SciPy's special functions takes 0.3 s

    return r, float(special.betainc(dof / 2, 0.5, dof / (dof + t2)))


@dataclass(frozen=True)
class Correlation:
    """One measurement's agreement between two sets of portraits."""

    r: float  # Pearson r over the paired portraits
    p: float  # its two-sided p-value (Student's t: assumes independent normal pairs)
    random_r: float  # mean r over random pairings of the same portraits (about 0)
    p_permutation: float  # two-sided permutation p-value: P(|r| under shuffles >= |r|)
    null_r95: float  # the 95th percentile of |r| under shuffles: a model's |r| to beat


def permutation_orders(
    n: int,
    n_permutations: int,
    seed: int = 0,
    clusters: Sequence[Any] | np.ndarray | None = None,  # (n,) labels, e.g. speakers
) -> np.ndarray:  # (P, n) row orders
    """Random re-pairings of ``n`` rows. Without ``clusters``, uniform permutations. With
    them, whole clusters trade places (a speaker's segments all pair with the segments of
    one other speaker, in order), only among clusters with the same number of rows: the
    speakers, not their segments, are what is exchangeable when nothing is shared."""
    rng = np.random.default_rng(seed)
    if clusters is None:
        return np.stack([rng.permutation(n) for _ in range(n_permutations)]).reshape(-1, n)
    labels = list(clusters)
    if len(labels) != n:
        raise MetricError(f"clusters must hold one label per row: {len(labels)} for {n} rows")
    members: dict[Any, list[int]] = {}
    for row, label in enumerate(labels):
        members.setdefault(label, []).append(row)
    by_size: dict[int, list[list[int]]] = {}
    for rows in members.values():
        by_size.setdefault(len(rows), []).append(rows)
    groups = [np.asarray(g) for g in by_size.values()]  # (clusters of a size, size)
    orders = np.empty((n_permutations, n), dtype=np.int64)
    for order in orders:
        for group in groups:
            order[group.ravel()] = group[rng.permutation(len(group))].ravel()
    return orders


def permutation_null(
    x: ArrayLike,  # (n,)
    y: ArrayLike,  # (n,) paired with x
    n_permutations: int = 1000,
    seed: int = 0,
    clusters: Sequence[Any] | np.ndarray | None = None,
    orders: np.ndarray | None = None,  # (P, n) re-pairings already drawn
) -> tuple[float, float, float]:
    """``(p, r95, mean_r)`` of Pearson r under random re-pairings of ``y``
    (:func:`permutation_orders`): the two-sided permutation p-value
    ``(1 + #{|r*| >= |r|}) / (1 + P)``, the 95th percentile of ``|r*|``, and the mean r*.
    ``nan`` for a constant input. ``orders``: the re-pairings to use, drawn once for several
    measurements of the same rows (then ``n_permutations``, ``seed`` and ``clusters`` are
    not used)."""
    a = np.asarray(x, dtype=np.float64).ravel()
    b = np.asarray(y, dtype=np.float64).ravel()
    if a.shape != b.shape or a.size < 3:
        raise MetricError(f"a permutation null needs two samples of one size >= 3, got {a.size}")
    if n_permutations < 1:
        raise MetricError(f"n_permutations must be at least 1, got {n_permutations}")
    if _constant(a) or _constant(b):
        return float("nan"), float("nan"), float("nan")
    a, b = a - a.mean(), b - b.mean()
    scale = np.sqrt((a * a).sum() * (b * b).sum())
    if scale == 0:
        return float("nan"), float("nan"), float("nan")
    r = (a * b).sum() / scale
    if orders is None:
        orders = permutation_orders(a.size, n_permutations, seed, clusters)
    shuffled = (b[orders] @ a) / scale
    # Ties within rounding count as reaching r (the identity order gives r exactly).
    reach = np.abs(shuffled) >= abs(r) - 1e-12
    p = (1.0 + reach.sum()) / (1.0 + len(orders))
    return float(p), float(np.quantile(np.abs(shuffled), 0.95)), float(shuffled.mean())


def craniofacial_correlations(
    reference: ArrayLike,  # (N, 68, 2) e.g. landmarks of the F2F portraits
    predicted: ArrayLike,  # (N, 68, 2) e.g. landmarks of the S2F portraits, same order
    n_random: int = 1000,
    seed: int = 0,
    clusters: Sequence[Any] | np.ndarray | None = None,  # (N,) each pair's speaker
) -> dict[str, Correlation]:
    """Pearson r of each measurement between paired portraits, beside its permutation null
    (the second set re-paired ``n_random`` times by :func:`permutation_orders`, the same
    orders for every measurement): the mean r, the permutation p-value and the 95th
    percentile of ``|r|``."""
    a = craniofacial_measurements(reference)
    b = craniofacial_measurements(predicted)
    n = len(next(iter(a.values())))
    if len(next(iter(b.values()))) != n:
        raise MetricError("reference and predicted landmarks must hold the same faces")
    if n_random < 1:
        raise MetricError(f"n_random must be at least 1, got {n_random}")
    orders = permutation_orders(n, n_random, seed, clusters)  # (n_random, n)
    out = {}
    for name in CRANIOFACIAL_MEASUREMENTS:
        r, p = pearson(a[name], b[name])
        p_perm, r95, random_r = permutation_null(a[name], b[name], n_random, orders=orders)
        out[name] = Correlation(r=r, p=p, random_r=random_r, p_permutation=p_perm, null_r95=r95)
    return out

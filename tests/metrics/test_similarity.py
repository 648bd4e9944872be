"""Per-pair angle, cosine, L2 and L1 against NumPy / SciPy, and the paper's scale."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cosine as scipy_cosine_distance

from speech2face.metrics import (
    SIMILARITY_KEYS,
    MetricError,
    angle_degrees,
    cosine_similarity,
    feature_similarity,
    l1_distance,
    l2_distance,
    pair_similarities,
)
from speech2face.metrics.similarity import (
    PAPER_DISTANCE_SCALE,
    PAPER_FEATURE_SIMILARITY,
    unit_l2_at_angle,
)

FC7_DIM = 4096


def numpy_reference(a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    cos = np.array([1.0 - scipy_cosine_distance(x, y) for x, y in zip(a, b, strict=True)])
    u = a / np.linalg.norm(a, axis=1, keepdims=True)
    v = b / np.linalg.norm(b, axis=1, keepdims=True)
    return {
        "angle_deg": np.degrees(np.arccos(np.clip(cos, -1, 1))),
        "cosine": cos,
        "l2_unit": np.linalg.norm(u - v, axis=1),
        "l1_unit": np.abs(u - v).sum(1),
        "l2_raw": np.linalg.norm(a - b, axis=1),
        "l1_raw": np.abs(a - b).sum(1),
    }


def test_known_angles():
    a = np.array([[1.0, 0.0, 0.0], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [0.0, 3.0, 0.0]])
    b = np.array([[0.0, 5.0, 0.0], [1.0, 2.0, 3.0], [-2.0, -4.0, -6.0], [0.0, 1.0, 1.0]])
    angles = angle_degrees(a, b).numpy()
    np.testing.assert_allclose(angles, [90.0, 0.0, 180.0, 45.0], atol=1e-12)
    np.testing.assert_allclose(cosine_similarity(a, b), [0.0, 1.0, -1.0, math.sqrt(0.5)])


def test_tiny_angles_stay_accurate():
    a = np.array([[1.0, 0.0]])
    b = np.array([[1.0, 1e-9]])  # arccos of the cosine would give exactly 0
    assert angle_degrees(a, b).item() == pytest.approx(math.degrees(1e-9), rel=1e-6)


def test_every_quantity_matches_numpy_on_random_pairs():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((200, 64)) * rng.uniform(0.1, 10, (200, 1))
    b = 0.5 * a + rng.standard_normal((200, 64))
    got = pair_similarities(torch.from_numpy(a), b)
    want = numpy_reference(a, b)
    assert set(got) == set(SIMILARITY_KEYS)
    for key in SIMILARITY_KEYS:
        np.testing.assert_allclose(got[key].numpy(), want[key], rtol=1e-9, atol=1e-9, err_msg=key)
    np.testing.assert_allclose(l2_distance(a, b), want["l2_unit"], rtol=1e-12)
    np.testing.assert_allclose(l1_distance(a, b), want["l1_unit"], rtol=1e-12)
    np.testing.assert_allclose(l2_distance(a, b, normalize=False), want["l2_raw"], rtol=1e-12)
    np.testing.assert_allclose(l1_distance(a, b, normalize=False), want["l1_raw"], rtol=1e-12)

    stats = feature_similarity(a.astype(np.float32), b.astype(np.float32))
    for key in SIMILARITY_KEYS:
        assert stats[key].mean == pytest.approx(want[key].mean(), rel=1e-5), key
        assert stats[key].std == pytest.approx(want[key].std(), rel=1e-4), key  # ddof=0


def test_unit_distances_ignore_scale_and_raw_ones_do_not():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2, 10, 32))
    once, scaled = pair_similarities(a, b), pair_similarities(3.0 * a, 3.0 * b)
    for key in ("angle_deg", "cosine", "l2_unit", "l1_unit"):
        torch.testing.assert_close(once[key], scaled[key])
    torch.testing.assert_close(3.0 * once["l2_raw"], scaled["l2_raw"])


def test_a_zero_feature_has_no_angle():
    values = pair_similarities(np.zeros((1, 4)), np.ones((1, 4)))
    for key in ("angle_deg", "cosine", "l2_unit", "l1_unit"):
        assert math.isnan(values[key].item()), key
    assert values["l2_raw"].item() == 2.0


def test_bad_inputs():
    with pytest.raises(MetricError, match="differ in shape"):
        angle_degrees(np.ones((3, 4)), np.ones((3, 5)))
    with pytest.raises(MetricError, match="no pairs"):
        feature_similarity(np.ones((0, 4)), np.ones((0, 4)))


def pairs_at_angle(degrees: np.ndarray, dim: int, rng: np.random.Generator):
    """Unit vectors ``(u, v)`` at the given angles, ``v - u`` dense in every dimension."""
    u = rng.standard_normal((degrees.size, dim))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    w = rng.standard_normal((degrees.size, dim))
    w -= (w * u).sum(1, keepdims=True) * u
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    t = np.radians(degrees)[:, None]
    return u, np.cos(t) * u + np.sin(t) * w


@pytest.mark.parametrize("audio", ["3s", "6s"])
def test_the_paper_l2_and_l1_are_unit_distances_times_one_scale(audio):
    # What the module docstring concludes: at the paper's angles, unit-normalised 4,096-D
    # features have L2 about 4.3 times the paper's, and the same factor maps L1.
    paper = PAPER_FEATURE_SIMILARITY[audio]
    mean, std = paper["angle_deg"]
    rng = np.random.default_rng(2)
    u, v = pairs_at_angle(rng.normal(mean, std, 1000), FC7_DIM, rng)
    stats = feature_similarity(u, v)
    assert stats["angle_deg"].mean == pytest.approx(mean, abs=0.5)
    assert stats["l2_unit"].mean == pytest.approx(unit_l2_at_angle(mean), rel=0.01)
    assert stats["l2_unit"].mean > 4 * paper["l2"][0]  # not the paper's L2
    for key, unit in (("l2", "l2_unit"), ("l1", "l1_unit")):
        assert PAPER_DISTANCE_SCALE * stats[unit].mean == pytest.approx(paper[key][0], rel=0.05)
    # L1 / L2 of a dense difference in D dimensions: sqrt(2 D / pi), 51.1 for fc7
    ratio = stats["l1_unit"].mean / stats["l2_unit"].mean
    assert ratio == pytest.approx(math.sqrt(2 * FC7_DIM / math.pi), rel=0.01)
    assert ratio == pytest.approx(paper["l1"][0] / paper["l2"][0], rel=0.05)

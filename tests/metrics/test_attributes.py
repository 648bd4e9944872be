"""Confusion matrices and agreement on cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from speech2face.metrics import MetricError
from speech2face.metrics.attributes import (
    AGE_BINS,
    ETHNICITIES,
    GENDERS,
    age_bin,
    confusion,
)


def test_known_confusion_matrix():
    reference = ["male"] * 4 + ["female"] * 6 + [None, "male"]
    compared = ["male", "male", "male", "female"] + ["female"] * 3 + ["male"] * 3 + ["male", None]
    result = confusion(reference, compared, GENDERS)
    assert result.total == 10  # the two faces with an unknown label are left out
    np.testing.assert_array_equal(result.counts, [[3, 1], [3, 3]])
    np.testing.assert_allclose(result.normalised(), [[0.75, 0.25], [0.5, 0.5]])
    assert result.agreement() == pytest.approx(0.6)
    assert result.per_class() == {"male": 0.75, "female": 0.5}


def test_every_row_sums_to_one_and_empty_rows_are_nan():
    rng = np.random.default_rng(0)
    labels = list(ETHNICITIES[:4])  # nobody is "other"
    reference = rng.choice(labels, size=200).tolist()
    compared = rng.choice(list(ETHNICITIES), size=200).tolist()
    matrix = confusion(reference, compared, ETHNICITIES).normalised()
    np.testing.assert_allclose(matrix[:4].sum(axis=1), 1.0)
    assert np.isnan(matrix[4]).all()
    assert confusion(reference, reference, ETHNICITIES).agreement() == 1.0


def test_age_bins():
    assert [age_bin(a) for a in (0, 9.9, 10, 34, 39.99, 79, 80, 104)] == [
        "0s", "0s", "10s", "30s", "30s", "70s", "80+", "80+",
    ]  # fmt: skip
    assert age_bin(None) is None
    assert set(age_bin(a) for a in range(0, 120)) == set(AGE_BINS)
    with pytest.raises(MetricError, match="non-negative"):
        age_bin(-1)


def test_bad_labels():
    with pytest.raises(MetricError, match="not one of"):
        confusion(["male"], ["unknown"], GENDERS)
    with pytest.raises(MetricError, match="one compared label"):
        confusion(["male"], [], GENDERS)
    with pytest.raises(MetricError, match="distinct"):
        confusion([], [], ("a", "a"))
    assert np.isnan(confusion([], [], GENDERS).agreement())

"""Attribute agreement between two labellings of the same faces: row-normalised confusion
matrices (the paper's attribute tables) and the share of faces labelled alike.

The paper classifies the true face and the portrait with one face-analysis model and
tabulates, for each true-face label (row), how the portraits were labelled (columns).
Age is compared in 10-year bins (:func:`age_bin`); ethnicity in :data:`ETHNICITIES`.
Unknown labels (``None``) leave a face out of both the matrix and the agreement.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from speech2face.metrics._common import MetricError

GENDERS = ("male", "female")
ETHNICITIES = ("white", "asian", "indian", "black", "other")
AGE_BIN_YEARS = 10
AGE_BINS = tuple(f"{low}s" for low in range(0, 80, AGE_BIN_YEARS)) + ("80+",)

# The paper's gender agreement of S2F (and F2F) portraits with the true face, per true label.
PAPER_GENDER_AGREEMENT = {"male": 0.94, "female": 0.94}
PAPER_GENDER_AGREEMENT_F2F = {"male": 0.98, "female": 0.89}
# The diagonal of its ethnicity matrix (S2F, then F2F).
PAPER_ETHNICITY_DIAGONAL = {"white": 0.61, "asian": 0.50, "indian": 0.13, "black": 0.11}
PAPER_ETHNICITY_DIAGONAL_F2F = {"white": 0.76, "asian": 0.71, "indian": 0.55, "black": 0.41}


def age_bin(age: float | None) -> str | None:
    """The 10-year bin of an age in years (``"30s"`` for 30-39, ``"80+"`` from 80)."""
    if age is None:
        return None
    age = float(age)
    if not math.isfinite(age) or age < 0:
        raise MetricError(f"an age must be a non-negative number of years, got {age}")
    low = int(age // AGE_BIN_YEARS) * AGE_BIN_YEARS
    return "80+" if low >= 80 else f"{low}s"


@dataclass(frozen=True)
class Confusion:
    """A confusion matrix over ``classes``: rows are the reference labels, columns the
    compared ones.

    Attributes:
        classes: the label of each row and column.
        counts: ``(C, C)`` int, faces per (reference, compared) pair.
    """

    classes: tuple[str, ...]
    counts: np.ndarray

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def normalised(self) -> np.ndarray:  # (C, C) float, rows sum to 1 (NaN for empty rows)
        rows = self.counts.sum(axis=1, keepdims=True).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(rows > 0, self.counts / rows, np.nan)

    def agreement(self) -> float:
        """Share of all counted faces labelled alike (the trace over the total)."""
        return float(np.trace(self.counts) / self.total) if self.total else float("nan")

    def per_class(self) -> dict[str, float]:
        """The diagonal of :meth:`normalised`: agreement for each reference label."""
        return dict(zip(self.classes, np.diag(self.normalised()).tolist(), strict=True))


def confusion(
    reference: Sequence[Any],  # (N,) labels of the true faces (or the dataset's labels)
    compared: Sequence[Any],  # (N,) labels of the portraits of the same faces
    classes: Sequence[str],
) -> Confusion:
    """Count each (reference, compared) pair; a ``None`` on either side is left out, and a
    label outside ``classes`` is an error (map it to ``"other"`` first)."""
    if len(reference) != len(compared):
        raise MetricError(
            f"one compared label per reference label is needed, got {len(reference)} "
            f"and {len(compared)}"
        )
    classes = tuple(classes)
    if len(set(classes)) != len(classes) or not classes:
        raise MetricError(f"classes must be distinct and not empty, got {classes}")
    index = {name: i for i, name in enumerate(classes)}
    counts = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for a, b in zip(reference, compared, strict=True):
        if a is None or b is None:
            continue
        for label in (a, b):
            if label not in index:
                raise MetricError(f"label {label!r} is not one of {classes}")
        counts[index[a], index[b]] += 1
    return Confusion(classes=classes, counts=counts)

"""Per-pair similarity of predicted and true face features (the paper's feature table).

The paper reports, over 5,000 test pairs of 4,096-D VGG-Face fc7 features, "angle
48.43 +- 6.01 deg, L2 0.19 +- 0.03, L1 9.81 +- 1.74" (3 s audio) and "45.75 +- 5.09,
0.18 +- 0.02, 9.42 +- 1.54" (6 s). It does not say how the features were scaled for L2 and
L1. What its numbers allow one to conclude:

- **The angle is comparable as is.** It does not depend on scale; :func:`angle_degrees`.
- **L2 is not the distance of unit-normalised features.** For unit vectors at angle a,
  ``|u - v| = 2 sin(a / 2)``: 0.82 at 48.43 deg and 0.78 at 45.75 deg, not 0.19 / 0.18.
  Nor is it the squared unit distance ``2 - 2 cos(a)`` (0.68 / 0.61), nor a per-dimension
  RMS (``0.82 / sqrt(4096) = 0.013``).
- **Paper L2 and L1 are the unit-vector distances times one common factor, about 0.23.**
  Paper / unit-vector L2 is 0.19 / 0.82 = 0.232 (3 s) and 0.18 / 0.78 = 0.232 (6 s); the
  same factor fits L1 (below). So both were computed on the same vectors, which behave like
  features of norm about 0.23 rather than 1 (raw features on some unstated scale, or
  normalised ones multiplied by a constant). The factor cannot be derived from the paper.
- **L1 and L2 come from the same dense 4,096-D differences.** Paper L1 / L2 is 51.6 (3 s)
  and 52.3 (6 s); for a difference vector with ``D`` i.i.d. Gaussian-like coordinates
  ``L1 / L2 = sqrt(2 D / pi)``, which is 51.1 for D = 4,096 (25.2 for 1,000-D, 40.9 for
  2,622-D). Unit vectors at the paper's angles with such a difference have L1 about 41.8 /
  39.7; times 0.232 that is 9.7 / 9.2, against the paper's 9.81 / 9.42.
- **The spread hints at unequal norms.** With every feature at one fixed norm, the relative
  spread (std / mean) of L2 and L1 would follow from the angle's: 0.116 (3 s) and 0.106
  (6 s). The paper's L1 spreads are 0.177 and 0.163 (L2: 0.16 and 0.11, loose after
  rounding to 0.03 / 0.02), as if the per-pair scale also varied by 10-15 %: a hint, not
  proof, of raw rather than normalised features.

So this module computes the plain definitions, on unit-normalised features (``*_unit``:
``|u - v|_2`` and ``|u - v|_1`` of ``u = a / |a|``, ``v = b / |b|``; the loss's feature
term is ``l2_unit ** 2``) and on the features as given (``*_raw``). The angle can be set
beside the paper's directly. ``l2_unit`` and ``l1_unit`` are about 4.3 times the paper's
L2 and L1 at the same angles: ``PAPER_DISTANCE_SCALE * l2_unit`` (and ``* l1_unit``) is the
comparable figure, an estimate. ``*_raw`` depends on the feature extractor's scale (fc7
before or after ReLU, input range) and compares to nothing published without that scale.

Statistics are ``mean +- std`` over pairs, std with ``ddof=0`` (NumPy's default). All
computations run in float64 on the inputs' device. A pair with an all-zero feature has no
direction: its angle, cosine and ``*_unit`` distances are NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from speech2face.metrics._common import ArrayLike, MetricError, as_features

ANGLE = "angle_deg"
COSINE = "cosine"
L2_UNIT = "l2_unit"
L1_UNIT = "l1_unit"
L2_RAW = "l2_raw"
L1_RAW = "l1_raw"
SIMILARITY_KEYS = (ANGLE, COSINE, L2_UNIT, L1_UNIT, L2_RAW, L1_RAW)

# The paper's feature similarity (mean, std over 5,000 test pairs); its L2 / L1 scale unstated.
PAPER_FEATURE_SIMILARITY = {
    "3s": {ANGLE: (48.43, 6.01), "l2": (0.19, 0.03), "l1": (9.81, 1.74)},
    "6s": {ANGLE: (45.75, 5.09), "l2": (0.18, 0.02), "l1": (9.42, 1.54)},
}
PAPER_DISTANCE_SCALE = 0.232  # paper L2 (L1) / unit-vector L2 (L1) at its angles, estimated


@dataclass(frozen=True)
class MeanStd:
    """Mean and standard deviation (ddof=0) of a per-pair quantity."""

    mean: float
    std: float

    def __str__(self) -> str:
        return f"{self.mean:.4g} +- {self.std:.4g}"


def _pair(pred: ArrayLike, true: ArrayLike) -> tuple[Tensor, Tensor]:
    a = as_features(pred, "pred")
    b = as_features(true, "true")
    if a.shape != b.shape:
        raise MetricError(f"pred and true differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    return a.double(), b.to(device=a.device, dtype=torch.float64)


def _unit(x: Tensor) -> Tensor:  # (N, D) -> (N, D), NaN rows where x is all zeros
    norm = x.norm(dim=1, keepdim=True)
    return x / torch.where(norm > 0, norm, torch.nan)


def _angle(
    u: Tensor,  # (N, D) unit vectors
    v: Tensor,  # (N, D) unit vectors
) -> Tensor:  # (N,) degrees
    return torch.rad2deg(2 * torch.atan2((u - v).norm(dim=1), (u + v).norm(dim=1)))


def angle_degrees(
    pred: ArrayLike,  # (N, D)
    true: ArrayLike,  # (N, D)
) -> Tensor:  # (N,) float64, in [0, 180]
    """Angle between each predicted and true feature, in degrees.

    Computed as ``2 atan2(|u - v|, |u + v|)`` on unit vectors, which stays accurate near 0
    and 180 degrees where ``acos`` of the cosine loses precision.
    """
    u, v = (_unit(x) for x in _pair(pred, true))
    return _angle(u, v)


def cosine_similarity(
    pred: ArrayLike,  # (N, D)
    true: ArrayLike,  # (N, D)
) -> Tensor:  # (N,) float64, in [-1, 1]
    """Cosine of the angle between each predicted and true feature."""
    u, v = (_unit(x) for x in _pair(pred, true))
    return (u * v).sum(1).clamp(-1.0, 1.0)


def l2_distance(
    pred: ArrayLike,  # (N, D)
    true: ArrayLike,  # (N, D)
    normalize: bool = True,
) -> Tensor:  # (N,) float64
    """``|a - b|_2`` per pair; of unit-normalised features when ``normalize`` (in [0, 2])."""
    a, b = _pair(pred, true)
    if normalize:
        a, b = _unit(a), _unit(b)
    return (a - b).norm(dim=1)


def l1_distance(
    pred: ArrayLike,  # (N, D)
    true: ArrayLike,  # (N, D)
    normalize: bool = True,
) -> Tensor:  # (N,) float64
    """``|a - b|_1`` per pair; of unit-normalised features when ``normalize``
    (at most ``2 sqrt(D)``)."""
    a, b = _pair(pred, true)
    if normalize:
        a, b = _unit(a), _unit(b)
    return (a - b).abs().sum(1)


def pair_similarities(
    pred: ArrayLike,  # (N, D) predicted features
    true: ArrayLike,  # (N, D) true features
) -> dict[str, Tensor]:  # each (N,) float64
    """Every per-pair quantity, keyed by ``SIMILARITY_KEYS`` (for bootstrap CIs)."""
    a, b = _pair(pred, true)
    u, v = _unit(a), _unit(b)
    return {
        ANGLE: _angle(u, v),
        COSINE: (u * v).sum(1).clamp(-1.0, 1.0),
        L2_UNIT: (u - v).norm(dim=1),
        L1_UNIT: (u - v).abs().sum(1),
        L2_RAW: (a - b).norm(dim=1),
        L1_RAW: (a - b).abs().sum(1),
    }


def feature_similarity(
    pred: ArrayLike,  # (N, D) predicted features
    true: ArrayLike,  # (N, D) true features
) -> dict[str, MeanStd]:
    """Mean and std over pairs of every quantity of :func:`pair_similarities`: the paper's
    feature similarity row (see the module docstring for which entries compare to it)."""
    values = pair_similarities(pred, true)
    if next(iter(values.values())).numel() == 0:
        raise MetricError("no pairs to compare")
    return {key: MeanStd(float(x.mean()), float(x.std(correction=0))) for key, x in values.items()}


def unit_l2_at_angle(degrees: float) -> float:
    """L2 distance of two unit vectors at ``degrees`` apart: ``2 sin(angle / 2)``."""
    return 2.0 * math.sin(math.radians(degrees) / 2.0)

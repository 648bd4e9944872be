"""Evaluation metrics shared by the trainer's validation and ``s2f-eval``.

Pure functions of features (torch tensors or NumPy arrays), no I/O:

- :mod:`~speech2face.metrics.retrieval`: recall@K of the true face from a predicted feature,
  over the whole gallery (the paper) or within random pools of identities (SF2F);
- :mod:`~speech2face.metrics.similarity`: per-pair angle, cosine, L2 and L1 (the paper's
  feature similarity table, and what its L2 / L1 figures can be compared to);
- :mod:`~speech2face.metrics.bootstrap`: percentile-bootstrap confidence intervals;
- :mod:`~speech2face.metrics.attributes`: row-normalised confusion matrices and agreement
  of gender, age (10-year bins) and ethnicity labels;
- :mod:`~speech2face.metrics.craniofacial`: the paper's craniofacial measurements on dlib's
  68 landmarks (the formula table is in the module), Pearson r with p-values between two
  sets of portraits, beside their permutation null (p-value, 95th percentile of |r|);
- :mod:`~speech2face.metrics.lattice`: how strongly portraits carry the grid of a decoder's
  stride-2 upsampling (spectral peaks on its lattice of frequencies, in dB).
"""

from speech2face.metrics._common import MetricError
from speech2face.metrics.attributes import Confusion, age_bin, confusion
from speech2face.metrics.bootstrap import (
    bootstrap_ci,
    bootstrap_distribution,
    recall_ci,
    recall_cis,
)
from speech2face.metrics.craniofacial import (
    CRANIOFACIAL_MEASUREMENTS,
    Correlation,
    craniofacial_correlations,
    craniofacial_measurements,
    pearson,
    permutation_null,
    permutation_orders,
)
from speech2face.metrics.lattice import lattice_peaks, power_spectrum
from speech2face.metrics.retrieval import (
    DEFAULT_KS,
    METRICS,
    Metric,
    chance_recall,
    draw_pools,
    nearest,
    nearest_label_agreement,
    pooled_ranks,
    pooled_recall_at_k,
    recall_at_k,
    recall_from_ranks,
    retrieval_ranks,
)
from speech2face.metrics.similarity import (
    SIMILARITY_KEYS,
    MeanStd,
    angle_degrees,
    cosine_similarity,
    feature_similarity,
    l1_distance,
    l2_distance,
    pair_similarities,
)

__all__ = [
    "CRANIOFACIAL_MEASUREMENTS",
    "Confusion",
    "Correlation",
    "DEFAULT_KS",
    "METRICS",
    "SIMILARITY_KEYS",
    "MeanStd",
    "Metric",
    "MetricError",
    "angle_degrees",
    "age_bin",
    "bootstrap_ci",
    "confusion",
    "craniofacial_correlations",
    "craniofacial_measurements",
    "pearson",
    "permutation_null",
    "permutation_orders",
    "bootstrap_distribution",
    "chance_recall",
    "cosine_similarity",
    "draw_pools",
    "feature_similarity",
    "l1_distance",
    "l2_distance",
    "lattice_peaks",
    "nearest",
    "nearest_label_agreement",
    "pair_similarities",
    "pooled_ranks",
    "power_spectrum",
    "pooled_recall_at_k",
    "recall_at_k",
    "recall_ci",
    "recall_cis",
    "recall_from_ranks",
    "retrieval_ranks",
]

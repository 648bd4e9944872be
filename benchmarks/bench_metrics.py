"""Retrieval recall@K at the paper's scale: 5,000 queries x 5,000 faces x 4,096-D fc7.

Reference: SciPy ``cdist`` of the full distance matrix then a full ``argsort`` of every row
(the naive way), timed in the same run on the same float32 features; the recalls of both
are printed so the figures can be checked against each other.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from scipy.spatial.distance import cdist

from benchmarks.common import best_time
from speech2face.metrics import DEFAULT_KS, recall_at_k
from speech2face.metrics.retrieval import QUERY_CHUNK_ELEMENTS

N_FACES = 5000  # the paper's retrieval gallery
FEATURE_DIM = 4096  # VGG-Face fc7
L1_QUERIES = 500  # L1 has no matrix-product form: time it on a tenth of the queries
NOISE = 26.0  # query = true feature + NOISE * Gaussian: recall@1 ~ 10 %, like the paper
SCIPY_METRIC = {"cosine": "cosine", "l2": "euclidean", "l1": "cityblock"}


def naive_recall(
    queries: np.ndarray,  # (N, D)
    gallery: np.ndarray,  # (M, D)
    metric: str,
) -> dict[int, float]:
    """Full distance matrix, full sort of every row; query i's true item is gallery i."""
    order = np.argsort(cdist(queries, gallery, SCIPY_METRIC[metric]), axis=1)
    ranks = (order == np.arange(len(queries))[:, None]).argmax(axis=1) + 1
    return {k: float(np.mean(ranks <= k)) for k in DEFAULT_KS}


def bench(
    queries: np.ndarray,  # (N, D) float32
    gallery: np.ndarray,  # (M, D) float32
    metric: str,
) -> None:
    n, m = len(queries), len(gallery)
    targets = np.arange(n)
    q, g = torch.from_numpy(queries), torch.from_numpy(gallery)
    ours: dict[int, float] = {}

    def run() -> None:
        ours.update(recall_at_k(q, g, targets, DEFAULT_KS, metric))

    with torch.inference_mode():
        t_ours = best_time(run, repeats=2 if metric != "l1" else 1, warmup=0)
    start = time.perf_counter()
    ref = naive_recall(queries, gallery, metric)
    t_ref = time.perf_counter() - start
    # Hits can differ where two distances agree to float32 precision (SciPy works in float64).
    diff = {k: round(100 * v, 2) for k, v in ref.items()}
    agree = "reference: same" if ours == ref else f"reference, float64: {diff}"
    recalls = ", ".join(f"R@{k} {100 * v:.2f}" for k, v in ours.items())
    print(f"recall@K, {metric}, {n} x {m} x {queries.shape[1]}, CPU ({recalls}; {agree}):")
    print(f"  speech2face.metrics.recall_at_k   {t_ours:8.2f} s")
    print(f"  SciPy cdist + argsort             {t_ref:8.2f} s")
    print(f"  ratio (reference / speech2face)   {t_ref / t_ours:8.2f}x")
    if torch.cuda.is_available():
        qc, gc = q.cuda(), g.cuda()

        def on_gpu() -> None:
            recall_at_k(qc, gc, targets, DEFAULT_KS, metric)
            torch.cuda.synchronize()

        t_gpu = best_time(on_gpu, repeats=3)
        print(f"  CUDA ({torch.cuda.get_device_name()})  {t_gpu:8.3f} s")


def main() -> None:
    rng = np.random.default_rng(0)
    gallery = rng.standard_normal((N_FACES, FEATURE_DIM), dtype=np.float32)
    queries = gallery + NOISE * rng.standard_normal(gallery.shape, dtype=np.float32)
    print(
        f"scores held at once: {QUERY_CHUNK_ELEMENTS * 4 / 2**20:.0f} MiB (float32);"
        f" the reference holds all {N_FACES} x {N_FACES} distances and their argsort"
        f" ({2 * N_FACES**2 * 8 / 2**20:.0f} MiB)"
    )
    for metric in ("cosine", "l2"):
        bench(queries, gallery, metric)
    bench(queries[:L1_QUERIES], gallery, "l1")


if __name__ == "__main__":
    main()

"""Input checks shared by the metrics: arrays or tensors in, float tensors out."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from speech2face.errors import S2FError

ArrayLike = Tensor | np.ndarray


class MetricError(S2FError, ValueError):
    """A metric called with inputs it cannot score (wrong shapes, non-finite features, ...)."""


def as_tensor(x: ArrayLike, name: str) -> Tensor:
    """``x`` as a tensor on its own device (NumPy arrays land on the CPU, without a copy)."""
    if isinstance(x, Tensor):
        return x.detach()
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x))
    raise MetricError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(x).__name__}")


def as_features(x: ArrayLike, name: str) -> Tensor:
    """A finite ``(N, D)`` floating tensor; integer inputs become float32."""
    t = as_tensor(x, name)
    if t.ndim != 2:
        raise MetricError(f"{name} must have shape (N, D), got {tuple(t.shape)}")
    if not t.is_floating_point():
        t = t.float()
    if not bool(torch.isfinite(t).all()):
        raise MetricError(f"{name} holds NaN or infinite values")
    return t


def as_index(x: ArrayLike, name: str, length: int | None, bound: int) -> Tensor:
    """A ``(length,)`` int64 tensor of indices in ``[0, bound)`` (any length for ``None``)."""
    t = as_tensor(x, name)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise MetricError(f"{name} must hold integer indices, got {t.dtype}")
    if t.ndim != 1 or (length is not None and t.shape[0] != length):
        want = "(N,)" if length is None else f"({length},)"
        raise MetricError(f"{name} must have shape {want}, got {tuple(t.shape)}")
    t = t.long()
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= bound):
        raise MetricError(f"{name} must lie in [0, {bound}), got [{int(t.min())}, {int(t.max())}]")
    return t


def check_same_dim(a: Tensor, b: Tensor, names: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise MetricError(f"{names} differ in feature size: {a.shape[1]} vs {b.shape[1]}")

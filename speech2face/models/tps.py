"""Thin-plate splines in torch: batched, differentiable, on any device.

A 2-D thin-plate spline through K control points ``c_k`` with values ``v_k`` is

    f(x) = a_0 + a_1 x + a_2 y + sum_k w_k U(|x - c_k|),    U(r) = r^2 log r^2,

with ``[K + lambda I, P; P^T, 0] [w; a] = [v; 0]``, where ``K_ij = U(|c_i - c_j|)`` is built
from the distances *between the control points* and ``P = [1, x, y]`` holds their
coordinates. With ``lambda = 0`` the spline passes through every control point; a small
``lambda`` (Tikhonov regularisation) trades exactness for smoothness. U(r) = r^2 log r^2 is
twice scipy's ``r^2 log r``: the interpolant is the same, only the weights halve.

Fitting and evaluation run in float64. The system is ill-conditioned in float32, and the
evaluation sums kernel terms much larger than their result (weights reach ~15 when
landmarks 2 px apart move differently), so float32 evaluation is off by up to 3e-3 px in a
224 px crop where float64 agrees with scipy to 1e-9 px.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["TPSError", "fit_tps", "evaluate_tps", "tps_kernel"]

SOLVE_DTYPE = torch.float64


class TPSError(ValueError):
    """Control points of the wrong shape, or too few to fit a spline."""


def tps_kernel(a: Tensor, b: Tensor) -> Tensor:
    """``U(|a_i - b_j|) = r^2 log r^2`` for ``a`` ``(B, N, 2)`` and ``b`` ``(B, K, 2)`` -> ``(B, N, K)``.

    ``U(0) = 0`` (the limit), with a gradient that stays finite there.
    """
    # |a|^2 + |b|^2 - 2 a.b: one batched matrix product and in-place updates instead of a
    # (B, N, K, 2) difference tensor (the grid of a 224 crop makes N = 50,176), and a
    # gradient that exists at r = 0, unlike a norm's.
    batch = max(a.shape[0], b.shape[0])
    a, b = a.expand(batch, -1, -1), b.expand(batch, -1, -1)  # (1, ...) pairs once
    squared_b = b.pow(2).sum(-1).unsqueeze(-2)  # (B, 1, K)
    r2 = torch.baddbmm(squared_b, a, b.transpose(-1, -2), alpha=-2.0)  # (B, N, K)
    r2 = r2.add_(a.pow(2).sum(-1, keepdim=True)).clamp_min_(0.0)
    # r^2 log r^2 -> 0 as r -> 0; clamping inside the log keeps its gradient finite.
    return r2 * torch.log(r2.clamp_min(torch.finfo(r2.dtype).tiny))


def _batched(points: Tensor, name: str) -> Tensor:
    if points.ndim == 2:
        points = points.unsqueeze(0)
    if points.ndim != 3 or points.shape[-1] != 2:
        raise TPSError(f"{name} must be (B, K, 2) or (K, 2), got {tuple(points.shape)}")
    return points


def fit_tps(
    control: Tensor,  # (B, K, 2) or (K, 2): control point positions
    values: Tensor,  # (B, K, 2) or (K, 2): the spline's value at each control point
    regularization: float = 0.0,
) -> tuple[Tensor, Tensor]:  # (B, K, 2) kernel weights, (B, 3, 2) affine part
    """Fit the 2-D -> 2-D thin-plate spline with ``f(control_k) = values_k``.

    Returns float64 ``(weights, affine)`` for :func:`evaluate_tps`: ``f(x) = [1, x, y] @
    affine + U(|x - control|) @ weights``. Differentiable with respect to both inputs.
    """
    control = _batched(control, "control")
    values = _batched(values, "values")
    batch = max(control.shape[0], values.shape[0])
    control = control.expand(batch, -1, -1)
    values = values.expand(batch, -1, -1)
    if control.shape != values.shape:
        raise TPSError(
            f"control {tuple(control.shape)} and values {tuple(values.shape)} do not match"
        )
    k = control.shape[1]
    if k < 3:
        raise TPSError(f"a thin-plate spline needs at least 3 control points, got {k}")
    c = control.to(SOLVE_DTYPE)
    kernel = tps_kernel(c, c)  # (B, K, K)
    if regularization:
        kernel = kernel + float(regularization) * torch.eye(k, dtype=c.dtype, device=c.device)
    ones = torch.ones(batch, k, 1, dtype=c.dtype, device=c.device)
    p = torch.cat([ones, c], dim=-1)  # (B, K, 3)
    top = torch.cat([kernel, p], dim=-1)  # (B, K, K + 3)
    bottom = torch.cat([p.transpose(1, 2), c.new_zeros(batch, 3, 3)], dim=-1)  # (B, 3, K + 3)
    system = torch.cat([top, bottom], dim=1)  # (B, K + 3, K + 3)
    rhs = torch.cat([values.to(SOLVE_DTYPE), c.new_zeros(batch, 3, 2)], dim=1)  # (B, K + 3, 2)
    solution = torch.linalg.solve(system, rhs)
    return solution[:, :k], solution[:, k:]


def evaluate_tps(
    points: Tensor,  # (B, N, 2) or (N, 2): where to evaluate the spline
    control: Tensor,  # (B, K, 2) or (K, 2): the control points it was fitted on
    weights: Tensor,  # (B, K, 2) from fit_tps
    affine: Tensor,  # (B, 3, 2) from fit_tps
    kernel: Tensor | None = None,  # (B or 1, N, K): tps_kernel(points, control), if known
) -> Tensor:  # (B, N, 2), in the dtype of ``points``
    """The spline fitted by :func:`fit_tps` at ``points`` (computed in float64).

    Points and control points shared by the whole batch (batch size 1) are paired once, not
    once per sample; a ``kernel`` computed earlier for the same pairs skips that step.
    """
    points = _batched(points, "points")
    dtype = points.dtype
    points = points.to(SOLVE_DTYPE)
    if kernel is None:
        kernel = tps_kernel(points, _batched(control, "control").to(SOLVE_DTYPE))
    weights, affine = weights.to(SOLVE_DTYPE), affine.to(SOLVE_DTYPE)
    linear = affine[:, :1] + points @ affine[:, 1:]  # (B, N, 2)
    return (linear + kernel.to(SOLVE_DTYPE) @ weights).to(dtype)

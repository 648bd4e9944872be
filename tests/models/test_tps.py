"""The thin-plate spline against scipy's, and the warp's grid convention against grid_sample's."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.interpolate import RBFInterpolator

from speech2face.models.landmarks import (
    border_points,
    default_mean_landmarks,
    grid_to_pixels,
    pixels_to_grid,
)
from speech2face.models.layers import ThinPlateSplineWarp, pixel_centres
from speech2face.models.tps import TPSError, evaluate_tps, fit_tps

MEAN = torch.from_numpy(default_mean_landmarks())  # (68, 2) pixels in the 224 crop
JAW_AND_LOWER_LIP = [6, 7, 8, 9, 10, 56, 57, 58, 65, 66, 67]


def mouth_opening(pixels: float = 8.0) -> torch.Tensor:
    moved = MEAN.clone()
    moved[JAW_AND_LOWER_LIP, 1] += pixels
    return moved


def rotated(angle: float = 0.1, scale: float = 1.08) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    matrix = torch.tensor([[c, -s], [s, c]]) * scale
    centre = MEAN.mean(dim=0)
    return (MEAN - centre) @ matrix.T + centre


def jittered(sigma: float = 3.0, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return MEAN + torch.from_numpy(rng.normal(0, sigma, MEAN.shape).astype(np.float32))


DISPLACEMENTS = {"random": jittered, "rotation_scale": rotated, "mouth": mouth_opening}


def with_border(points_px: torch.Tensor) -> torch.Tensor:  # (K, 2) px -> (K + 8, 2) normalised
    return torch.cat([pixels_to_grid(points_px), border_points(3)])


def scipy_tps(control: torch.Tensor, values: torch.Tensor, smoothing: float = 0.0):
    return RBFInterpolator(
        control.double().numpy(),
        values.double().numpy(),
        kernel="thin_plate_spline",
        degree=1,
        smoothing=smoothing,
    )


@pytest.mark.parametrize("name", sorted(DISPLACEMENTS))
def test_mapped_points_match_scipy(name):
    control = with_border(MEAN)
    values = with_border(DISPLACEMENTS[name]())
    weights, affine = fit_tps(control, values)
    rng = np.random.default_rng(1)
    queries = torch.from_numpy(rng.uniform(-1, 1, (4000, 2)).astype(np.float32))
    queries = torch.cat([queries, control])  # and the control points themselves
    ours = grid_to_pixels(evaluate_tps(queries, control, weights, affine)[0].double())
    reference = grid_to_pixels(torch.from_numpy(scipy_tps(control, values)(queries.double())))
    assert (ours - reference).abs().max() < 1e-3  # pixels of the 224 crop


def test_control_points_are_interpolated_exactly():
    control, values = with_border(MEAN), with_border(mouth_opening())
    weights, affine = fit_tps(control, values)
    mapped = evaluate_tps(control.double(), control, weights, affine)[0]
    assert (grid_to_pixels(mapped) - grid_to_pixels(values.double())).abs().max() < 1e-6


def test_regularised_spline_matches_scipy_smoothing():
    # U(r) = r^2 log r^2 is twice scipy's r^2 log r, so lambda here is 2x scipy's smoothing.
    control, values = with_border(MEAN), with_border(jittered(seed=3))
    weights, affine = fit_tps(control, values, regularization=0.02)
    queries = pixel_centres(32, 32).view(-1, 2)
    ours = evaluate_tps(queries.double(), control, weights, affine)[0]
    reference = torch.from_numpy(scipy_tps(control, values, smoothing=0.01)(queries.double()))
    assert (grid_to_pixels(ours) - grid_to_pixels(reference)).abs().max() < 1e-3
    # ...and no longer passes through the control points.
    at_control = evaluate_tps(control.double(), control, weights, affine)[0]
    assert (at_control - values.double()).abs().max() > 1e-4


def test_batched_fit_equals_one_at_a_time():
    control = torch.stack([with_border(MEAN), with_border(rotated())])
    values = torch.stack([with_border(jittered(seed=4)), with_border(mouth_opening())])
    weights, affine = fit_tps(control, values)
    queries = torch.rand(2, 50, 2) * 2 - 1
    together = evaluate_tps(queries, control, weights, affine)
    for i in range(2):
        w, a = fit_tps(control[i], values[i])
        alone = evaluate_tps(queries[i], control[i], w, a)[0]
        torch.testing.assert_close(together[i], alone, atol=1e-6, rtol=0)


def test_fit_and_evaluate_are_differentiable():
    torch.manual_seed(0)
    control = (torch.rand(6, 2, dtype=torch.float64) * 2 - 1).requires_grad_()
    values = (control.detach() + 0.1 * torch.randn(6, 2, dtype=torch.float64)).requires_grad_()
    queries = torch.rand(5, 2, dtype=torch.float64) * 2 - 1

    def mapped(c, v):
        weights, affine = fit_tps(c, v)
        return evaluate_tps(queries, c, weights, affine)

    assert torch.autograd.gradcheck(mapped, (control, values))


def test_too_few_or_mismatched_points_are_refused():
    with pytest.raises(TPSError, match="at least 3"):
        fit_tps(torch.zeros(2, 2), torch.zeros(2, 2))
    with pytest.raises(TPSError, match="do not match"):
        fit_tps(torch.rand(5, 2), torch.rand(6, 2))
    with pytest.raises(TPSError, match=r"\(B, K, 2\)"):
        fit_tps(torch.rand(5, 3), torch.rand(5, 3))


# --------------------------------------------------------------------------- the warp


def test_identity_grid_is_grid_samples_own_pixel_grid():
    """Zero displacement gives exactly ``affine_grid``'s align_corners=False pixel centres."""
    warp = ThinPlateSplineWarp()
    points = pixels_to_grid(MEAN).unsqueeze(0)
    grid = warp.sampling_grid(points, points, 224, 224)
    identity = torch.nn.functional.affine_grid(
        torch.eye(2, 3).unsqueeze(0), [1, 1, 224, 224], align_corners=False
    )
    assert (grid - identity).abs().max() < 1e-5
    image = torch.rand(1, 3, 224, 224)
    # grid_sample's own float32 unnormalisation leaves ~1e-6 px, times a noise image's slope.
    assert (warp(image, points, points) - image).abs().max() < 2e-5


def folded_fraction(grid: torch.Tensor) -> float:  # grid: (1, H, W, 2)
    """Share of grid cells whose orientation flips (Jacobian determinant <= 0)."""
    g = grid_to_pixels(grid.double())[0]
    dx = g[:-1, 1:] - g[:-1, :-1]
    dy = g[1:, :-1] - g[:-1, :-1]
    det = dx[..., 0] * dy[..., 1] - dx[..., 1] * dy[..., 0]
    return float((det <= 0).double().mean())


@pytest.mark.parametrize("name", sorted(DISPLACEMENTS))
def test_warp_grid_is_the_exact_spline_and_barely_folds(name):
    warp = ThinPlateSplineWarp()
    source = pixels_to_grid(MEAN).unsqueeze(0)
    target = pixels_to_grid(DISPLACEMENTS[name]()).unsqueeze(0)
    grid = warp.sampling_grid(source, target, 224, 224)
    # The grid is the spline from output (target) to input (source) positions at pixel centres.
    reference = scipy_tps(
        torch.cat([target[0], border_points(3)]), torch.cat([source[0], border_points(3)])
    )
    centres = pixel_centres(224, 224).view(-1, 2).double()
    expected = torch.from_numpy(reference(centres)).view(1, 224, 224, 2)
    assert (grid_to_pixels(grid.double()) - grid_to_pixels(expected)).abs().max() < 1e-3
    assert folded_fraction(grid) < 0.01


@pytest.mark.parametrize("index, shift", [(30, (12.0, -9.0)), (48, (-7.0, 5.0)), (8, (0.0, 10.0))])
def test_a_dot_moves_where_told(index, shift):
    """A dot at a landmark ends on the landmark's target: the output pixel nearest the
    target samples the dot's centre, and the brightest output pixel is that one."""
    warp = ThinPlateSplineWarp()
    # Source and target on pixel centres: the output pixel at the target must sample the
    # input pixel at the source exactly.
    source = MEAN.clone()
    source[index] = source[index].round()
    target = source.clone()
    target[index] += torch.tensor(shift)
    ys, xs = torch.meshgrid(torch.arange(224.0), torch.arange(224.0), indexing="ij")
    x0, y0 = source[index]
    image = torch.exp(-((xs - x0) ** 2 + (ys - y0) ** 2) / (2 * 1.0**2))[None, None]
    out = warp(image, pixels_to_grid(source), pixels_to_grid(target))[0, 0]
    x1, y1 = (int(v) for v in target[index])
    assert out[y1, x1] > 0.999  # the dot's peak
    peak = int(out.argmax())
    assert (peak % 224, peak // 224) == (x1, y1)
    # Far from the moved point, and on the fixed border, nothing moves.
    far = (xs - x1) ** 2 + (ys - y1) ** 2 > 60**2
    assert out[far].abs().max() < 1e-6


def test_a_shared_fixed_target_is_paired_once_and_reused():
    """Warping onto one layout (the decoder's texture targets) keeps the pixel-to-target
    kernel; results equal the per-sample computation, and a new layout is not served stale."""
    warp = ThinPlateSplineWarp()
    image = torch.rand(3, 1, 64, 64)
    sources = pixels_to_grid(torch.stack([jittered(seed=s) for s in range(3)]) * 64 / 224)
    layout = pixels_to_grid(MEAN * 64 / 224)
    first = warp(image, sources, layout)
    kept = warp._cached
    assert kept is not None and warp(image, sources, layout).equal(first)
    assert warp._cached[3] is kept[3]  # reused, not recomputed
    one_by_one = torch.cat(
        [
            warp(image[i : i + 1], sources[i], layout.expand(1, -1, -1).clone().requires_grad_())
            for i in range(3)
        ]
    )
    assert (first - one_by_one).abs().max() < 1e-6
    other = pixels_to_grid(rotated() * 64 / 224)
    fresh = ThinPlateSplineWarp()(image, sources, other)
    assert warp(image, sources, other).equal(fresh)


def test_warp_runs_under_autocast_and_keeps_the_dtype():
    warp = ThinPlateSplineWarp()
    image = torch.rand(2, 3, 64, 64, dtype=torch.bfloat16)
    points = pixels_to_grid(MEAN * 64 / 224)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = warp(image, points, points)
    assert out.dtype == torch.bfloat16
    assert (out.float() - image.float()).abs().max() < 1e-2


@pytest.mark.gpu
def test_warp_agrees_on_cpu_and_gpu():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    warp = ThinPlateSplineWarp()
    image = torch.rand(2, 3, 224, 224)
    source = pixels_to_grid(MEAN)
    target = pixels_to_grid(torch.stack([mouth_opening(), rotated()]))
    cpu = warp(image, source, target)
    gpu = warp.cuda()(image.cuda(), source.cuda(), target.cuda()).cpu()
    assert (cpu - gpu).abs().max() < 1e-4

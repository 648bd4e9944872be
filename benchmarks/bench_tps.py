"""Thin-plate-spline warp: batch 8 of 224x224 crops, 68 landmarks plus 8 border points.

Times the warp the face decoder renders with (fit, grid, ``grid_sample``; forward, and forward
plus backward into the landmarks), and the warp of faces onto one shared layout (the texture
targets: the pixel-to-layout kernel is computed once and kept), against scipy's ``RBFInterpolator`` computing the same
sampling grid in the same run (the reference the tests check it against). Also reports the
grid's largest difference from scipy's, in pixels.
"""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.common import best_time
from speech2face.models.landmarks import (
    border_points,
    default_mean_landmarks,
    grid_to_pixels,
    pixels_to_grid,
)
from speech2face.models.layers import ThinPlateSplineWarp, pixel_centres

BATCH = 8
SIZE = 224


def _inputs(device: str):
    generator = torch.Generator().manual_seed(0)
    mean = torch.from_numpy(default_mean_landmarks())
    moved = mean + 2.0 * torch.randn(BATCH, *mean.shape, generator=generator)
    image = torch.rand(BATCH, 3, SIZE, SIZE, generator=generator)
    return (
        image.to(device),
        pixels_to_grid(mean).to(device),
        pixels_to_grid(moved).to(device),
    )


def _scipy_grid(source: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    from scipy.interpolate import RBFInterpolator

    border = border_points(3)
    centres = pixel_centres(SIZE, SIZE).view(-1, 2).double().numpy()
    grids = []
    for moved in target.cpu():
        spline = RBFInterpolator(
            torch.cat([moved, border]).double().numpy(),
            torch.cat([source.cpu(), border]).double().numpy(),
            kernel="thin_plate_spline",
            degree=1,
        )
        grids.append(spline(centres))
    return np.stack(grids).reshape(BATCH, SIZE, SIZE, 2)


def _time_device(device: str, reference: np.ndarray, reference_s: float) -> None:
    warp = ThinPlateSplineWarp().to(device)
    image, source, target = _inputs(device)

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    def grid() -> torch.Tensor:
        out = warp.sampling_grid(source.expand(BATCH, -1, -1), target, SIZE, SIZE)
        sync()
        return out

    def forward() -> None:
        warp(image, source, target)
        sync()

    def backward() -> None:
        moved = target.clone().requires_grad_()
        warp(image, source, moved).mean().backward()
        sync()

    def to_mean() -> None:  # faces onto one layout, the decoder's texture targets
        warp(image, target, source)
        sync()

    ours = grid()
    grid_s, forward_s, backward_s, to_mean_s = (
        best_time(fn) for fn in (grid, forward, backward, to_mean)
    )
    error = grid_to_pixels(ours.double().cpu()) - grid_to_pixels(torch.from_numpy(reference))
    print(
        f"{device}: grid {grid_s * 1e3:7.1f} ms ({reference_s / grid_s:5.1f}x scipy), "
        f"warp {forward_s * 1e3:7.1f} ms, warp+backward {backward_s * 1e3:7.1f} ms, "
        f"onto one layout {to_mean_s * 1e3:7.1f} ms ({reference_s / to_mean_s:5.1f}x scipy), "
        f"max |grid - scipy| {error.abs().max():.1e} px"
    )


def main() -> None:
    _, source, target = _inputs("cpu")
    reference = _scipy_grid(source, target)
    reference_s = best_time(lambda: _scipy_grid(source, target), repeats=1, warmup=0)
    print(f"scipy RBFInterpolator grid (reference): {reference_s * 1e3:8.1f} ms / batch of {BATCH}")
    for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        _time_device(device, reference, reference_s)


if __name__ == "__main__":
    main()

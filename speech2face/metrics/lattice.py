"""How strongly images carry the grid that stride-2 upsampling draws (checkerboard artifacts).

A decoder that doubles a ``b x b`` texture ``n`` times to ``N = b 2^n`` pixels with uneven
kernels leaves a pattern of period 2, 4, ..., ``2^n`` pixels: in the image's 2-D spectrum,
peaks on the lattice of frequencies ``(k b / N, l b / N)`` cycles a pixel, that is every
``b``-th DFT bin. :func:`lattice_peaks` measures how far the images' mean power spectrum at
those bins stands above its neighbourhood; natural faces (or a decoder without the grid)
give about 0 dB there, a checkerboard several dB more.

The power spectrum is that of the grey-level image (mean of the channels) minus its mean,
under a 2-D Hann window (so the image's borders do not leak power along the axes), averaged
over the images. A lattice bin's neighbourhood is the ``(2 r + 1)^2`` bins around it less its
own 3 x 3 (the window spreads a peak over one bin each side), taken circularly; the ratio is
the bin's power over the neighbourhood's median.
"""

from __future__ import annotations

import torch
from torch import Tensor

from speech2face.metrics._common import MetricError

__all__ = ["lattice_peaks", "power_spectrum"]

NEIGHBOURHOOD = 3  # r: a 7 x 7 block of bins around each lattice bin
PEAK_HALF_WIDTH = 1  # the Hann window spreads a line over +-1 bin: left out of the reference


def _lattice(n: int, step: int) -> range:
    """Signed frequencies (in bins of an ``n``-point DFT) that are multiples of ``step``, from
    minus to plus the Nyquist frequency."""
    top = (n // 2) // step * step
    return range(-top, top + 1, step)


def power_spectrum(images: Tensor) -> Tensor:  # (B, C, H, W) -> (H, W) float64
    """Mean power spectrum of the images' Hann-windowed, mean-removed grey levels (DC at
    ``[0, 0]``, as :func:`torch.fft.fft2` orders bins)."""
    if images.ndim != 4 or images.shape[0] < 1 or min(images.shape[2:]) < 4:
        raise MetricError(f"images must be (B, C, H, W) with H, W >= 4, got {tuple(images.shape)}")
    grey = images.to(torch.float64).mean(dim=1)  # (B, H, W)
    if not bool(torch.isfinite(grey).all()):
        raise MetricError("images hold non-finite values")
    grey = grey - grey.mean(dim=(1, 2), keepdim=True)
    height, width = grey.shape[1:]
    window = torch.outer(
        torch.hann_window(height, periodic=False, dtype=torch.float64),
        torch.hann_window(width, periodic=False, dtype=torch.float64),
    )
    spectrum = torch.fft.fft2(grey * window)
    return (spectrum.real.square() + spectrum.imag.square()).mean(dim=0)


def lattice_peaks(
    images: Tensor,  # (B, C, H, W) portraits or face crops, any range
    step: int,  # bins between lattice frequencies: the decoder's texture_base at its own size
    radius: int = NEIGHBOURHOOD,
) -> Tensor:  # (P,) float64, dB of each lattice bin over its neighbourhood
    """``10 log10(power / median power around it)`` at each lattice bin ``(k step, l step)``
    up to the Nyquist frequency, DC left out, one of each pair of mirror-image bins.

    Their mean is the figure to compare: about 0 dB for images without the grid.
    """
    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        raise MetricError(f"step must be a positive whole number of bins, got {step!r}")
    power = power_spectrum(images)
    height, width = power.shape
    if step > min(height, width) // 2:
        raise MetricError(f"step {step} leaves no lattice frequency in a {height}x{width} image")
    if radius <= PEAK_HALF_WIDTH:
        raise MetricError(f"radius must be more than {PEAK_HALF_WIDTH}, got {radius}")
    offsets = torch.arange(-radius, radius + 1)
    dy, dx = torch.meshgrid(offsets, offsets, indexing="ij")
    ring = (dy.abs() > PEAK_HALF_WIDTH) | (dx.abs() > PEAK_HALF_WIDTH)
    dy, dx = dy[ring], dx[ring]
    bins = set()  # each lattice bin once: (y, x) and its mirror image (-y, -x) are one
    for fy in _lattice(height, step):
        for fx in _lattice(width, step):
            y, x = fy % height, fx % width
            bins.add(min((y, x), ((-y) % height, (-x) % width)))
    bins.discard((0, 0))
    ratios = []
    for ky, kx in sorted(bins):
        peak = power[ky, kx]
        around = power[(ky + dy) % height, (kx + dx) % width].median()
        ratios.append(10.0 * torch.log10(peak.clamp_min(1e-30) / around.clamp_min(1e-30)))
    return torch.stack(ratios)

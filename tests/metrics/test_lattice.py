"""The upsampling-grid measure: its spectrum against NumPy's, and what it reads on images
with and without a grid."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from speech2face.metrics import MetricError
from speech2face.metrics.lattice import lattice_peaks, power_spectrum


def smooth_images(count: int = 8, size: int = 112, seed: int = 0) -> torch.Tensor:
    """Face-like smooth texture: uniform noise blurred by a 9x9 box, (count, 3, size, size)."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(count, 3, size + 8, size + 8, generator=generator)
    return F.avg_pool2d(noise, 9, stride=1)


def test_power_spectrum_is_numpys():
    images = smooth_images(3, 40)[:, :, :40, :36]  # not square
    grey = images.double().mean(dim=1).numpy()
    grey = grey - grey.mean(axis=(1, 2), keepdims=True)
    window = np.outer(np.hanning(40), np.hanning(36))  # NumPy's symmetric Hann window
    want = (np.abs(np.fft.fft2(grey * window)) ** 2).mean(axis=0)
    np.testing.assert_allclose(power_spectrum(images).numpy(), want, rtol=1e-10, atol=1e-12)


def test_images_without_a_grid_read_about_zero():
    peaks = lattice_peaks(smooth_images(), step=14)
    assert peaks.numel() == 33  # 8 x 8 lattice bins, mirror images once, DC out
    assert abs(float(peaks.mean())) < 2.0


@pytest.mark.parametrize("period", [2, 4, 8])
def test_a_faint_grid_stands_out(period):
    images = smooth_images()
    y = torch.arange(112)
    grid = (((y[:, None] // (period // 2)) + (y[None, :] // (period // 2))) % 2).float()
    peaks = lattice_peaks(images + 0.01 * grid, step=14)  # 1 % of the range
    assert float(peaks.max()) > 20.0
    assert float(peaks.mean()) > float(lattice_peaks(images, step=14).mean()) + 1.0


def test_the_paper_decoders_grid_and_the_resize_decoders_none():
    """Untrained, the paper's transposed convolutions (5x5, stride 2) already draw the grid;
    resizing then convolving (3x3) does not."""
    from speech2face.models.face_decoder import FaceDecoder

    features = torch.randn(8, 64, generator=torch.Generator().manual_seed(0))
    read = {}
    for upsample in ("transposed", "resize"):
        torch.manual_seed(1)
        decoder = FaceDecoder(
            feature_dim=64, image_size=112, texture_base=14, texture_channels=32,
            min_channels=8, landmark_hidden=[32], upsample=upsample,
        )  # fmt: skip
        with torch.no_grad():
            out = decoder(features)
        read[upsample] = float(lattice_peaks(out.image, step=14).mean())
    assert read["transposed"] > 8.0
    assert abs(read["resize"]) < 2.0


def test_bad_arguments_are_one_line():
    with pytest.raises(MetricError, match="step"):
        lattice_peaks(smooth_images(1), step=0)
    with pytest.raises(MetricError, match="no lattice frequency"):
        lattice_peaks(smooth_images(1), step=60)
    with pytest.raises(MetricError, match=r"\(B, C, H, W\)"):
        lattice_peaks(torch.zeros(3, 112, 112), step=14)
    with pytest.raises(MetricError, match="non-finite"):
        lattice_peaks(torch.full((1, 3, 16, 16), float("nan")), step=4)

"""Building blocks of the Speech2Face networks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speech2face.models.landmarks import border_points, check_border_per_side
from speech2face.models.tps import evaluate_tps, fit_tps, tps_kernel


class ConvReLUBN(nn.Sequential):
    """Valid (unpadded) 2-D convolution, then ReLU, then BatchNorm (Table 1's order).

    The voice encoder normalises after the non-linearity, as the paper's table lists it.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1
    ) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride),
            nn.ReLU(inplace=True),
            nn.BatchNorm2d(out_channels),
        )


def _rows(x: Tensor) -> tuple[Tensor, Tensor]:
    """The even and the odd rows along dim 2 of ``(B, C, T, F)``, the last one of an odd
    ``T`` left out: two ``(B, C, T // 2, F)`` views."""
    rows = x.shape[2] // 2 * 2
    return x[:, :, 0:rows:2], x[:, :, 1:rows:2]


class _PairMax(torch.autograd.Function):
    """2x1 max-pooling along dim 2 as the larger of the even and the odd rows: the values,
    and the gradient routed to the element :func:`torch.nn.functional.max_pool2d` picks (the
    first of a tie, a NaN over a number), without its int64 indices and per-window loop,
    which are slow on a CPU for the voice encoder's tall ``(B, C, T, F)`` activations."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # (B, C, T, F) -> (B, C, T // 2, F)
        first, second = _rows(x)
        ctx.save_for_backward((second > first) | second.isnan())  # which one max_pool2d picks
        ctx.shape = x.shape
        return torch.maximum(first, second)  # NaN where either is: max_pool2d's values

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (take_second,) = ctx.saved_tensors
        rows = take_second.shape[2] * 2
        out = grad.new_zeros(ctx.shape)
        out[:, :, 0:rows:2] = grad.masked_fill(take_second, 0)
        out[:, :, 1:rows:2] = grad.masked_fill(~take_second, 0)
        return out


class TimeMaxPool(nn.MaxPool2d):
    """2x1 max-pooling along time only: ``(B, C, T, F) -> (B, C, T // 2, F)``.

    On a CPU a factor of 2 runs as the larger of the even and odd rows (:class:`_PairMax`
    where a gradient is needed): the same values and gradients as ``max_pool2d``, checked
    in the tests. Elsewhere, and for other factors, it is ``max_pool2d``.
    """

    def __init__(self, factor: int = 2) -> None:
        super().__init__(kernel_size=(factor, 1), stride=(factor, 1))
        self.factor = int(factor)

    def forward(self, x: Tensor) -> Tensor:
        if self.factor == 2 and x.device.type == "cpu" and x.ndim == 4:
            if torch.is_grad_enabled() and x.requires_grad:
                return _PairMax.apply(x)
            return torch.maximum(*_rows(x))  # no gradient to route: the values alone
        return super().forward(x)


class ThinPlateSplineWarp(nn.Module):
    """Differentiable thin-plate-spline warp that moves control points to new positions.

    ``forward(image, source, target)`` returns the image deformed so that the content at
    each ``source`` point appears at the matching ``target`` point. Points are in
    ``grid_sample``'s normalised frame with ``align_corners=False`` (see
    :func:`speech2face.models.landmarks.pixels_to_grid`): -1 and 1 are the outer edges of the
    image and pixel ``i`` of ``W`` has its centre at ``(2 i + 1) / W - 1``. Fixed points on
    the image border (zero displacement) keep the frame in place.

    The warp samples the input at the spline's value at each output pixel, so the spline is
    fitted from target (output) positions to source (input) positions
    (:func:`speech2face.models.tps.fit_tps`), evaluated at the output pixel centres in the
    same ``align_corners=False`` convention, and handed to ``grid_sample``.

    Args:
        border_per_side: fixed points per image edge, corners included.
        padding_mode: ``grid_sample``'s padding outside the image.
        regularization: Tikhonov term of the spline (0: exact interpolation).
    """

    def __init__(
        self, border_per_side: int = 3, padding_mode: str = "border", regularization: float = 0.0
    ) -> None:
        super().__init__()
        self.border_per_side = check_border_per_side(border_per_side)
        self.padding_mode = padding_mode
        self.regularization = float(regularization)
        # The kernel between the output pixels and a fixed target layout (the decoder's mean
        # geometry, when faces are warped onto it): (target, height, width, kernel).
        self._cached: tuple[Tensor, int, int, Tensor] | None = None

    def _kernel(self, pixels: Tensor, target: Tensor, height: int, width: int) -> Tensor:
        """``tps_kernel(pixels, target)``, kept for a target shared by the batch and without
        gradient, which is reused while the same layout comes back."""
        if target.shape[0] != 1 or target.requires_grad:
            return tps_kernel(pixels, target)
        cached = self._cached
        if (
            cached is not None
            and cached[1:3] == (height, width)
            and cached[0].shape == target.shape
            and cached[0].device == target.device
            and torch.equal(cached[0], target)
        ):
            return cached[3]
        kernel = tps_kernel(pixels, target)
        self._cached = (target.detach().clone(), height, width, kernel)
        return kernel

    def sampling_grid(
        self,
        source: Tensor,  # (B, K, 2) control points in the input image, normalised
        target: Tensor,  # (B or 1, K, 2) where they must land in the output, normalised
        height: int,
        width: int,
    ) -> Tensor:  # (B, H, W, 2): input position sampled by each output pixel
        """The ``grid_sample`` grid of the warp (border points added here)."""
        # Made here, not kept as a buffer: a few constants (and a decoder built on the meta
        # device to receive a checkpoint's weights keeps nothing to fill in).
        border = border_points(self.border_per_side).to(source.device, source.dtype)[None]
        source = torch.cat([source, border.expand(source.shape[0], -1, -1)], dim=1)
        target = torch.cat([target, border.expand(target.shape[0], -1, -1)], dim=1)
        weights, affine = fit_tps(target, source, self.regularization)  # float64
        pixels = pixel_centres(height, width, device=source.device, dtype=weights.dtype)
        pixels = pixels.view(1, -1, 2)
        kernel = self._kernel(pixels, target.to(weights.dtype), height, width)
        grid = evaluate_tps(pixels, target, weights, affine, kernel=kernel)
        return grid.view(-1, height, width, 2).to(source.dtype)

    def forward(
        self,
        image: Tensor,  # (B, C, H, W)
        source: Tensor,  # (B, K, 2) or (K, 2): control points in the input image
        target: Tensor,  # (B, K, 2) or (K, 2): where they must land in the output
    ) -> Tensor:  # (B, C, H, W)
        batch, _, height, width = image.shape
        source = source.expand(batch, -1, -1) if source.ndim == 2 else source
        target = target.unsqueeze(0) if target.ndim == 2 else target  # (1, K, 2): shared
        # Float32 at least, even under autocast: half precision cannot place a pixel.
        with torch.autocast(device_type=image.device.type, enabled=False):
            dtype = torch.promote_types(image.dtype, torch.float32)
            grid = self.sampling_grid(source.to(dtype), target.to(dtype), height, width)
            warped = F.grid_sample(
                image.to(dtype),
                grid,
                mode="bilinear",
                padding_mode=self.padding_mode,
                align_corners=False,
            )
        return warped.to(image.dtype)


def pixel_centres(
    height: int, width: int, device: torch.device | str | None = None, dtype=torch.float32
) -> Tensor:  # (H, W, 2)
    """(x, y) of every pixel centre in ``grid_sample``'s ``align_corners=False`` frame."""
    xs = (2 * torch.arange(width, device=device, dtype=dtype) + 1) / width - 1
    ys = (2 * torch.arange(height, device=device, dtype=dtype) + 1) / height - 1
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y], dim=-1)

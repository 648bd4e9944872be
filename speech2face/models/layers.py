"""Building blocks of the Speech2Face networks."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from speech2face.models.landmarks import border_points


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


class TimeMaxPool(nn.MaxPool2d):
    """2x1 max-pooling along time only: ``(B, C, T, F) -> (B, C, T // 2, F)``."""

    def __init__(self, factor: int = 2) -> None:
        super().__init__(kernel_size=(factor, 1), stride=(factor, 1))


class ThinPlateSplineWarp(nn.Module):
    """Differentiable thin-plate-spline warp that moves control points to new positions.

    ``forward(image, source, target)`` returns the image deformed so that the content at
    each ``source`` point appears at the matching ``target`` point. Points are in
    ``grid_sample``'s normalised frame (``align_corners=False``, see
    :func:`speech2face.models.landmarks.pixels_to_grid`). Fixed points on the image border
    (zero displacement) keep the frame in place.

    kornia's ``warp_image_tps`` samples the *input* at the spline's value at each *output*
    pixel, so the spline is fitted from target (output) to source (input) positions:
    ``get_tps_transform(target, source)`` with ``source`` as the kernel centres.
    """

    def __init__(self, border_per_side: int = 3, padding_mode: str = "border") -> None:
        super().__init__()
        self.register_buffer("border", border_points(border_per_side), persistent=False)
        self.padding_mode = padding_mode

    def forward(
        self,
        image: Tensor,  # (B, C, H, W)
        source: Tensor,  # (B, K, 2) or (K, 2): control points in the input image
        target: Tensor,  # (B, K, 2) or (K, 2): where they must land in the output
    ) -> Tensor:  # (B, C, H, W)
        from kornia.geometry.transform import get_tps_transform, warp_image_tps

        batch = image.shape[0]
        source = source.expand(batch, -1, -1) if source.ndim == 2 else source
        target = target.expand(batch, -1, -1) if target.ndim == 2 else target
        border = self.border.to(dtype=image.dtype).expand(batch, -1, -1)
        # Solve the spline in float32 even under autocast: the system is ill-conditioned in
        # half precision.
        with torch.autocast(device_type=image.device.type, enabled=False):
            source = torch.cat([source.float(), border.float()], dim=1)
            target = torch.cat([target.float(), border.float()], dim=1)
            kernel_weights, affine_weights = get_tps_transform(target, source)
            warped = warp_image_tps(
                image.float(),
                source,
                kernel_weights,
                affine_weights,
                align_corners=False,
                padding_mode=self.padding_mode,
            )
        return warped.to(image.dtype)

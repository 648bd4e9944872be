"""Image tensor conversions shared by ``s2f-eval`` and ``s2f-infer``."""

from __future__ import annotations

import torch
from torch import Tensor


def to_uint8(images: Tensor) -> Tensor:  # (B, 3, H, W) in [0, 1] -> (B, 3, H, W) uint8 (CPU)
    """Images in [0, 1] as bytes on the CPU: clamped, scaled to 255 and rounded."""
    return (images.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()

"""The face decoder of Cole et al. (CVPR 2017): identity feature -> frontal portrait.

The feature passes through a fully connected layer to 1,000 units (:attr:`FaceDecoder.fc_in`,
the layer the Speech2Face loss taps as ``f_dec``), then two branches:

- landmarks: a shallow MLP with ReLUs predicting K 2-D landmarks as offsets from the mean
  geometry (so an untrained decoder starts at the mean face);
- texture: a fully connected layer to 14x14x256, then transposed convolutions (kernel 5,
  stride 2) up to 224x224 with max(256 / 2^i, 32) channels after the i-th, then a 1x1
  convolution to RGB and a sigmoid. The texture lives in the mean face geometry.

  A 5x5 kernel at stride 2 covers even output pixels with 3x3 taps and odd ones with 2x2
  (Odena et al., "Deconvolution and Checkerboard Artifacts", Distill 2016), which draws a
  grid into the portraits at the periods 2, 4, ... of the upsampling. ``upsample="resize"``
  doubles the size by nearest-neighbour resizing and then applies a 3x3 convolution (same
  widths; at the doubled size a 3x3 kernel costs about what the 5x5 transposed one does),
  which covers every pixel alike; ``"transposed"`` is the paper's and the default.

The texture is then warped by a thin-plate spline that moves the mean landmarks to the
predicted ones, with fixed points on the image border. The mean geometry is a buffer (saved
in checkpoints): :func:`speech2face.models.landmarks.mean_geometry` computes it from training
landmarks; until then a canonical frontal layout is used.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from speech2face.errors import S2FError
from speech2face.models.landmarks import (
    CROP_SIZE,
    NUM_LANDMARKS,
    default_mean_landmarks,
    grid_to_pixels,
    pixels_to_grid,
)
from speech2face.models.layers import ThinPlateSplineWarp

EMBED_DIM = 1000  # the first layer, tapped by the Speech2Face loss
TEXTURE_BASE = 14  # texture branch starts at 14x14
TEXTURE_CHANNELS = 256
MIN_CHANNELS = 32  # channels after the i-th transposed conv: max(256 / 2^i, 32)
DECONV_KERNEL = 5
DECONV_STRIDE = 2
RESIZE_KERNEL = 3  # upsample="resize": the convolution after each nearest-neighbour doubling
LANDMARK_HIDDEN = (256,)
LANDMARK_INIT_STD = 1e-3  # small last-layer weights: an untrained decoder draws the mean shape
BORDER_PER_SIDE = 3  # fixed TPS points per image edge: corners and midpoints (8 in all)
UPSAMPLING = ("transposed", "resize")  # the paper's transposed convs | resize, then convolve


class FaceDecoderError(S2FError, ValueError):
    """An impossible decoder architecture, or inputs of the wrong shape."""


@dataclass
class FaceDecoderConfig:
    """Architecture of a :class:`FaceDecoder`; stored in its checkpoints."""

    feature_dim: int = 4096
    embed_dim: int = EMBED_DIM
    num_landmarks: int = NUM_LANDMARKS
    landmark_hidden: list[int] = field(default_factory=lambda: list(LANDMARK_HIDDEN))
    image_size: int = CROP_SIZE
    texture_base: int = TEXTURE_BASE
    texture_channels: int = TEXTURE_CHANNELS
    min_channels: int = MIN_CHANNELS
    border_per_side: int = BORDER_PER_SIDE
    upsample: str = "transposed"

    def __post_init__(self) -> None:
        self.landmark_hidden = [int(h) for h in self.landmark_hidden]
        if self.upsample not in UPSAMPLING:
            raise FaceDecoderError(
                f"upsample must be one of {', '.join(UPSAMPLING)}, got {self.upsample!r}"
            )
        ratio = self.image_size / self.texture_base
        if ratio < 1 or ratio != 2 ** round(math.log2(ratio)):
            raise FaceDecoderError(
                f"image_size / texture_base must be a power of 2, got "
                f"{self.image_size} / {self.texture_base}"
            )

    @property
    def num_upsamples(self) -> int:
        """Transposed convolutions from ``texture_base`` to ``image_size`` (4: 14 -> 224)."""
        return round(math.log2(self.image_size / self.texture_base))

    def deconv_channels(self) -> list[int]:
        """Channels after each transposed convolution (128, 64, 32, 32 by default)."""
        return [
            max(self.texture_channels // 2**i, self.min_channels)
            for i in range(1, self.num_upsamples + 1)
        ]


@dataclass
class DecoderOutput:
    """What :meth:`FaceDecoder.forward` returns.

    Attributes:
        image: ``(B, 3, H, W)`` portrait in [0, 1] (texture warped to the landmarks), or
            ``None`` from ``forward(..., warp=False)``.
        texture: ``(B, 3, H, W)`` texture in the mean geometry, in [0, 1].
        landmarks: ``(B, K, 2)`` predicted (x, y) pixel coordinates in the portrait.
    """

    image: Tensor | None
    texture: Tensor
    landmarks: Tensor


class FaceDecoder(nn.Module):
    """Identity feature ``(B, feature_dim)`` -> portrait ``(B, 3, 224, 224)`` in [0, 1].

    Args:
        feature_dim: width of the input feature (the face encoder's ``dim``).
        embed_dim: width of the first layer (1,000).
        num_landmarks: K landmarks (68 dlib points).
        landmark_hidden: hidden widths of the landmark MLP.
        image_size, texture_base, texture_channels, min_channels: texture branch geometry.
        border_per_side: fixed TPS points per image edge.
        upsample: ``"transposed"`` (the paper's 5x5 stride-2 transposed convolutions) or
            ``"resize"`` (nearest-neighbour doubling, then a 3x3 convolution: no grid).
        mean_landmarks: ``(K, 2)`` pixel mean geometry; default: a canonical frontal layout
            (68 points) or, for other K, ``set_mean_geometry`` must be called.
    """

    kind = "face_decoder"

    def __init__(
        self,
        feature_dim: int = 4096,
        embed_dim: int = EMBED_DIM,
        num_landmarks: int = NUM_LANDMARKS,
        landmark_hidden: list[int] | tuple[int, ...] = LANDMARK_HIDDEN,
        image_size: int = CROP_SIZE,
        texture_base: int = TEXTURE_BASE,
        texture_channels: int = TEXTURE_CHANNELS,
        min_channels: int = MIN_CHANNELS,
        border_per_side: int = BORDER_PER_SIDE,
        upsample: str = "transposed",
        mean_landmarks: np.ndarray | Tensor | None = None,
    ) -> None:
        super().__init__()
        cfg = FaceDecoderConfig(
            feature_dim=int(feature_dim),
            embed_dim=int(embed_dim),
            num_landmarks=int(num_landmarks),
            landmark_hidden=list(landmark_hidden),
            image_size=int(image_size),
            texture_base=int(texture_base),
            texture_channels=int(texture_channels),
            min_channels=int(min_channels),
            border_per_side=int(border_per_side),
            upsample=upsample,
        )
        self.config = cfg
        self.fc_in = nn.Linear(cfg.feature_dim, cfg.embed_dim)
        self.relu = nn.ReLU()

        widths = [cfg.embed_dim, *cfg.landmark_hidden]
        mlp: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:], strict=True):
            mlp += [nn.Linear(a, b), nn.ReLU()]
        last = nn.Linear(widths[-1], 2 * cfg.num_landmarks)
        if not last.weight.is_meta:  # built on the meta device, a checkpoint's weights follow
            nn.init.normal_(last.weight, std=LANDMARK_INIT_STD)
            nn.init.zeros_(last.bias)
        self.landmark_mlp = nn.Sequential(*mlp, last)

        base = cfg.texture_base
        self.texture_fc = nn.Linear(cfg.embed_dim, cfg.texture_channels * base * base)
        ups: list[nn.Module] = []
        previous = cfg.texture_channels
        for width in cfg.deconv_channels():
            if cfg.upsample == "transposed":
                ups.append(
                    nn.ConvTranspose2d(
                        previous,
                        width,
                        DECONV_KERNEL,
                        stride=DECONV_STRIDE,
                        padding=DECONV_KERNEL // 2,
                        output_padding=DECONV_STRIDE - 1,  # exactly doubles the size
                    )
                )
            else:  # "resize": every output pixel sees the same 3x3 taps
                ups += [
                    nn.Upsample(scale_factor=DECONV_STRIDE, mode="nearest"),
                    nn.Conv2d(previous, width, RESIZE_KERNEL, padding=RESIZE_KERNEL // 2),
                ]
            ups.append(nn.ReLU())
            previous = width
        self.upsample = nn.Sequential(*ups)
        self.to_rgb = nn.Conv2d(previous, 3, kernel_size=1)
        self.warp = ThinPlateSplineWarp(cfg.border_per_side)

        if mean_landmarks is None:
            if cfg.num_landmarks != NUM_LANDMARKS:
                raise FaceDecoderError(
                    f"no default mean geometry for {cfg.num_landmarks} landmarks: "
                    "pass mean_landmarks"
                )
            mean_landmarks = default_mean_landmarks(cfg.image_size)
        self.register_buffer("mean_landmarks", self._check_mean(mean_landmarks))

    @classmethod
    def from_config(
        cls,
        config: FaceDecoderConfig | dict[str, Any],
        mean_landmarks: np.ndarray | Tensor | None = None,
    ) -> FaceDecoder:
        """Build from a :class:`FaceDecoderConfig` or its ``asdict`` form."""
        values = asdict(config) if isinstance(config, FaceDecoderConfig) else dict(config)
        return cls(**values, mean_landmarks=mean_landmarks)

    def _check_mean(self, mean: np.ndarray | Tensor) -> Tensor:
        mean = torch.as_tensor(np.asarray(mean) if not isinstance(mean, Tensor) else mean)
        expected = (self.config.num_landmarks, 2)
        finite = mean.is_meta or bool(torch.isfinite(mean).all())  # meta: values come later
        if tuple(mean.shape) != expected or not finite:
            raise FaceDecoderError(
                f"mean landmarks must be finite {expected} pixels, got {tuple(mean.shape)}"
            )
        return mean.detach().to(torch.float32).clone()

    def set_mean_geometry(self, mean: np.ndarray | Tensor) -> None:
        """Replace the mean geometry: ``(K, 2)`` pixel coordinates (see ``mean_geometry``)."""
        self.mean_landmarks.copy_(self._check_mean(mean).to(self.mean_landmarks.device))

    def embed(self, features: Tensor) -> Tensor:  # features: (B, feature_dim) -> (B, 1000)
        """The first layer (``f_dec`` of the Speech2Face loss), before its ReLU."""
        return self.fc_in(features)

    def forward(
        self,
        features: Tensor,  # (B, feature_dim)
        warp: bool = True,
    ) -> DecoderOutput:
        """Texture, landmarks and, with ``warp``, the portrait.

        ``warp=False`` leaves ``image`` out: the per-sample spline warp is most of the
        forward and backward cost, and a loss without an identity term does not need it.
        """
        cfg = self.config
        if features.ndim != 2 or features.shape[1] != cfg.feature_dim:
            raise FaceDecoderError(
                f"face decoder input must be (B, {cfg.feature_dim}), got {tuple(features.shape)}"
            )
        hidden = self.relu(self.embed(features))  # (B, 1000)
        size = cfg.image_size
        mean_grid = pixels_to_grid(self.mean_landmarks, size)  # (K, 2)
        offsets = self.landmark_mlp(hidden).view(-1, cfg.num_landmarks, 2)
        landmarks_grid = mean_grid + offsets  # (B, K, 2), normalised

        base = cfg.texture_base
        x = self.relu(self.texture_fc(hidden)).view(-1, cfg.texture_channels, base, base)
        texture = torch.sigmoid(self.to_rgb(self.upsample(x)))  # (B, 3, 224, 224)
        image = self.warp(texture, mean_grid, landmarks_grid).clamp(0.0, 1.0) if warp else None
        return DecoderOutput(
            image=image, texture=texture, landmarks=grid_to_pixels(landmarks_grid, size)
        )

    def render(self, features: Tensor) -> Tensor:  # (B, feature_dim) -> (B, 3, 224, 224)
        """Just the portrait."""
        image = self.forward(features).image
        assert image is not None
        return image

    def to_mean_geometry(
        self,
        images: Tensor,  # (B, 3, 224, 224) aligned face crops
        landmarks: Tensor,  # (B, K, 2) their landmarks, pixels
    ) -> Tensor:  # (B, 3, 224, 224)
        """Warp faces so their landmarks sit on the mean geometry (the texture target)."""
        size = self.config.image_size
        mean_grid = pixels_to_grid(self.mean_landmarks, size)
        return self.warp(images, pixels_to_grid(landmarks.to(images.dtype), size), mean_grid)

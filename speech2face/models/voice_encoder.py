"""The voice encoder of Table 1 (Oh et al. 2019): complex spectrogram -> face feature.

Every convolution is 4x4 with no padding, followed by ReLU then BatchNorm; max-pooling runs
along time only (2x1) after conv3, conv4, conv5 and conv6; conv8 and conv9 have stride 2 and
conv9 is linear (no ReLU/BN). Time is then averaged away entirely, followed by ReLU and
BatchNorm, a 4,096-unit fully connected layer with ReLU, and a linear output layer.

For 6 s of audio (598 frames, 257 frequency bins) the map before the time pooling is
6 x 57 x 512 (time x frequency x channels), so the first fully connected layer takes
57 x 512 = 29,184 inputs. Because time is pooled globally, any input at least
:meth:`VoiceEncoder.min_frames` long works (3 s = 298 frames leaves one time step).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from torch import Tensor, nn

from speech2face.audio import N_FREQ
from speech2face.errors import S2FError
from speech2face.models.layers import ConvReLUBN, TimeMaxPool

IN_CHANNELS = 2  # real and imaginary parts of the compressed spectrogram
KERNEL_SIZE = 4
CONV_CHANNELS = (64, 64, 128, 128, 128, 256, 512, 512, 512)  # conv1 ... conv9
CONV_STRIDES = (1, 1, 1, 1, 1, 1, 1, 2, 2)
POOL_AFTER = (3, 4, 5, 6)  # convs (1-based) followed by a 2x1 max-pool along time
TIME_POOL = 2
HIDDEN_DIM = 4096
FEATURE_DIM = 4096  # VGG-Face fc7


class VoiceEncoderError(S2FError, ValueError):
    """A spectrogram the voice encoder cannot take, or an impossible architecture."""


@dataclass
class VoiceEncoderConfig:
    """Architecture of a :class:`VoiceEncoder`; stored in its checkpoints.

    The defaults are the paper's; ``out_dim`` follows the face encoder's feature width.
    """

    out_dim: int = FEATURE_DIM
    hidden_dim: int = HIDDEN_DIM
    in_channels: int = IN_CHANNELS
    n_freq: int = N_FREQ
    channels: list[int] = field(default_factory=lambda: list(CONV_CHANNELS))
    strides: list[int] = field(default_factory=lambda: list(CONV_STRIDES))
    pool_after: list[int] = field(default_factory=lambda: list(POOL_AFTER))
    kernel_size: int = KERNEL_SIZE

    def __post_init__(self) -> None:
        self.channels = [int(c) for c in self.channels]
        self.strides = [int(s) for s in self.strides]
        self.pool_after = [int(p) for p in self.pool_after]
        if len(self.channels) != len(self.strides) or len(self.channels) < 1:
            raise VoiceEncoderError("channels and strides need one entry per convolution")
        if any(not 1 <= p < len(self.channels) for p in self.pool_after):
            raise VoiceEncoderError(
                f"pool_after must name convs 1..{len(self.channels) - 1}: {self.pool_after}"
            )
        if self.out_freq < 1:
            raise VoiceEncoderError(f"n_freq={self.n_freq} is too small for the convolutions")

    @property
    def out_freq(self) -> int:
        """Frequency width after the convolutions (57 for 257 bins)."""
        width = self.n_freq
        for stride in self.strides:
            width = (width - self.kernel_size) // stride + 1
        return width

    @property
    def fc_in(self) -> int:
        """Inputs of the first fully connected layer: channels x frequency (29,184)."""
        return self.channels[-1] * self.out_freq

    def out_frames(self, frames: int) -> int:
        """Time steps left before the global time pooling, for ``frames`` input frames."""
        for index, stride in enumerate(self.strides, start=1):
            frames = (frames - self.kernel_size) // stride + 1
            if frames < 1:
                return 0
            if index in self.pool_after:
                frames //= TIME_POOL
        return frames


class VoiceEncoder(nn.Module):
    """Spectrogram ``(B, 2, T, 257)`` -> predicted face feature ``(B, out_dim)``.

    Args:
        out_dim: output width, the face encoder's ``dim`` (4,096 for VGG-Face fc7).
        hidden_dim: width of the first fully connected layer.
        in_channels, n_freq: input channels and frequency bins.
        channels, strides: per convolution, conv1 first.
        pool_after: 1-based indices of the convolutions followed by a 2x1 time max-pool.
        kernel_size: square convolution kernel.

    ``config`` (a :class:`VoiceEncoderConfig`) records these for checkpoints.
    """

    kind = "voice_encoder"

    def __init__(
        self,
        out_dim: int = FEATURE_DIM,
        hidden_dim: int = HIDDEN_DIM,
        in_channels: int = IN_CHANNELS,
        n_freq: int = N_FREQ,
        channels: list[int] | tuple[int, ...] = CONV_CHANNELS,
        strides: list[int] | tuple[int, ...] = CONV_STRIDES,
        pool_after: list[int] | tuple[int, ...] = POOL_AFTER,
        kernel_size: int = KERNEL_SIZE,
    ) -> None:
        super().__init__()
        cfg = VoiceEncoderConfig(
            out_dim=int(out_dim),
            hidden_dim=int(hidden_dim),
            in_channels=int(in_channels),
            n_freq=int(n_freq),
            channels=list(channels),
            strides=list(strides),
            pool_after=list(pool_after),
            kernel_size=int(kernel_size),
        )
        self.config = cfg
        layers: list[nn.Module] = []
        previous = cfg.in_channels
        last = len(cfg.channels)
        for index, (width, stride) in enumerate(
            zip(cfg.channels, cfg.strides, strict=True), start=1
        ):
            if index == last:  # conv9: linear, no ReLU/BN
                layers.append(nn.Conv2d(previous, width, cfg.kernel_size, stride=stride))
            else:
                layers.append(ConvReLUBN(previous, width, cfg.kernel_size, stride=stride))
            if index in cfg.pool_after:
                layers.append(TimeMaxPool(TIME_POOL))
            previous = width
        self.convs = nn.Sequential(*layers)
        self.post_pool = nn.Sequential(nn.ReLU(inplace=True), nn.BatchNorm2d(previous))
        self.fc1 = nn.Linear(cfg.fc_in, cfg.hidden_dim)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(cfg.hidden_dim, cfg.out_dim)

    @classmethod
    def from_config(cls, config: VoiceEncoderConfig | dict[str, Any]) -> VoiceEncoder:
        """Build from a :class:`VoiceEncoderConfig` or its ``asdict`` form."""
        values = asdict(config) if isinstance(config, VoiceEncoderConfig) else dict(config)
        return cls(**values)

    @property
    def out_dim(self) -> int:
        return self.config.out_dim

    def min_frames(self) -> int:
        """Shortest input (in spectrogram frames) that leaves a time step to pool."""
        frames = 1
        while self.config.out_frames(frames) < 1:
            frames += 1
        return frames

    def forward(self, spec: Tensor) -> Tensor:  # spec: (B, 2, T, 257) -> (B, out_dim)
        cfg = self.config
        if spec.ndim != 4 or spec.shape[1] != cfg.in_channels or spec.shape[3] != cfg.n_freq:
            raise VoiceEncoderError(
                f"voice encoder input must be (B, {cfg.in_channels}, T, {cfg.n_freq}), "
                f"got {tuple(spec.shape)}"
            )
        if cfg.out_frames(spec.shape[2]) < 1:
            raise VoiceEncoderError(
                f"{spec.shape[2]} frames is too short: the voice encoder needs at least "
                f"{self.min_frames()}"
            )
        x = self.convs(spec)  # (B, 512, T', 57)
        x = x.mean(dim=2, keepdim=True)  # average over all of time: (B, 512, 1, 57)
        x = self.post_pool(x).flatten(1)  # (B, 512 * 57 = 29,184)
        return self.fc2(self.relu(self.fc1(x)))

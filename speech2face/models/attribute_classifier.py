"""A small face-attribute classifier trained from scratch: face crop -> gender, age, ethnicity.

Evaluation labels true faces and portraits with an attribute backend
(:mod:`speech2face.attributes`); this network is the one this project trains itself
(``s2f-train task=attributes``, :mod:`speech2face.attributes.classifier`), with no pretrained
weights. A crop is resized to ``image_size`` (64 or 112), normalised, and passed through
``len(channels)`` stages of [3x3 conv, BN, ReLU] x 2 + 2x2 max-pool; the map is averaged
over space, and one linear head per attribute gives class logits:

- ``gender``: the 2 classes of ``GENDERS`` (male, female);
- ``age``: the 9 ten-year bins of ``AGE_BINS`` (0s ... 70s, 80+), classified rather than
  regressed, since evaluation compares ages in those bins; a predicted bin stands for its
  middle year (:func:`bin_middle`: 35 for the 30s, 85 for 80+);
- ``ethnicity``: the 5 classes of ``ETHNICITIES``.

Every head exists in every model; which were trained (had labels in the training data) is
recorded in the ``trained`` buffer, saved with the weights, so a checkpoint says itself which
of its heads to trust.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speech2face.errors import S2FError
from speech2face.metrics.attributes import AGE_BIN_YEARS, AGE_BINS, ETHNICITIES, GENDERS

ATTRIBUTE_CLASSES: dict[str, tuple[str, ...]] = {
    "gender": GENDERS,
    "age": AGE_BINS,
    "ethnicity": ETHNICITIES,
}
HEADS = tuple(ATTRIBUTE_CLASSES)  # ("gender", "age", "ethnicity"), the order of ``trained``
IMAGE_SIZE = 112
CHANNELS = (32, 64, 128, 256)
HIDDEN_DIM = 256
DROPOUT = 0.3
# Inputs in [0, 1] are centred and scaled to about unit spread (no data statistics needed).
INPUT_MEAN = 0.5
INPUT_STD = 0.25


class AttributeClassifierError(S2FError, ValueError):
    """Images the classifier cannot take, or an impossible architecture."""


def bin_middle(index: int) -> float:
    """The middle year of age bin ``index`` of ``AGE_BINS``: 5 for the 0s, 85 for 80+."""
    return float(index * AGE_BIN_YEARS + AGE_BIN_YEARS / 2)


@dataclass
class AttributeClassifierConfig:
    """Architecture of an :class:`AttributeClassifier`; stored in its checkpoints."""

    image_size: int = IMAGE_SIZE
    channels: list[int] = field(default_factory=lambda: list(CHANNELS))
    hidden_dim: int = HIDDEN_DIM
    dropout: float = DROPOUT

    def __post_init__(self) -> None:
        self.image_size = int(self.image_size)
        self.channels = [int(c) for c in self.channels]
        self.hidden_dim = int(self.hidden_dim)
        self.dropout = float(self.dropout)
        if not self.channels or any(c < 1 for c in self.channels):
            raise AttributeClassifierError(f"channels must be positive widths: {self.channels}")
        if self.image_size < 2 ** len(self.channels):
            raise AttributeClassifierError(
                f"image_size={self.image_size} is too small for {len(self.channels)} "
                f"2x poolings (needs >= {2 ** len(self.channels)})"
            )
        if self.hidden_dim < 1 or not 0.0 <= self.dropout < 1.0:
            raise AttributeClassifierError("hidden_dim must be >= 1 and dropout in [0, 1)")


def _stage(inputs: int, width: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inputs, width, 3, padding=1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(inplace=True),
        nn.Conv2d(width, width, 3, padding=1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class AttributeClassifier(nn.Module):
    """Face crop ``(B, 3, image_size, image_size)`` in [0, 1] -> logits per attribute.

    Args:
        image_size: the square input side (crops are resized to it by :meth:`prepare`).
        channels: the width of each conv stage (each halves the resolution).
        hidden_dim: width of the shared fully connected layer before the heads.
        dropout: dropout before the heads, in training.
    """

    kind = "attribute_classifier"

    def __init__(
        self,
        image_size: int = IMAGE_SIZE,
        channels: list[int] | tuple[int, ...] = CHANNELS,
        hidden_dim: int = HIDDEN_DIM,
        dropout: float = DROPOUT,
    ) -> None:
        super().__init__()
        cfg = AttributeClassifierConfig(
            image_size=image_size, channels=list(channels), hidden_dim=hidden_dim, dropout=dropout
        )
        self.config = cfg
        stages, previous = [], 3
        for width in cfg.channels:
            stages.append(_stage(previous, width))
            previous = width
        self.features = nn.Sequential(*stages)
        self.hidden = nn.Sequential(
            nn.Linear(previous, cfg.hidden_dim), nn.ReLU(inplace=True), nn.Dropout(cfg.dropout)
        )
        self.heads = nn.ModuleDict(
            {
                name: nn.Linear(cfg.hidden_dim, len(classes))
                for name, classes in ATTRIBUTE_CLASSES.items()
            }
        )
        # Which heads were trained on labels, in HEADS order; set by the trainer.
        self.register_buffer("trained", torch.zeros(len(HEADS), dtype=torch.bool))

    @classmethod
    def from_config(cls, config: AttributeClassifierConfig | dict[str, Any]) -> AttributeClassifier:
        """Build from an :class:`AttributeClassifierConfig` or its ``asdict`` form."""
        values = asdict(config) if isinstance(config, AttributeClassifierConfig) else dict(config)
        return cls(**values)

    @property
    def trained_attributes(self) -> tuple[str, ...]:
        """The attributes whose heads were trained, in :data:`HEADS` order."""
        return tuple(name for name, done in zip(HEADS, self.trained.tolist(), strict=True) if done)

    def set_trained(self, attributes: tuple[str, ...] | list[str]) -> None:
        unknown = sorted(set(attributes) - set(HEADS))
        if unknown:
            raise AttributeClassifierError(f"unknown attributes {unknown} (heads: {HEADS})")
        flags = [name in attributes for name in HEADS]
        self.trained.copy_(torch.tensor(flags, dtype=torch.bool))

    def prepare(self, images: Tensor) -> Tensor:  # (B, 3, H, W) uint8 -> (B, 3, S, S) float
        """Crops of any size as uint8 RGB -> floats in [0, 1] at ``image_size`` (area-averaged
        when shrinking, bilinear when enlarging)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise AttributeClassifierError(
                f"images must be (B, 3, H, W) RGB, got {tuple(images.shape)}"
            )
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        size = self.config.image_size
        if x.shape[-2:] == (size, size):
            return x
        if x.shape[-2] >= size and x.shape[-1] >= size:
            return F.interpolate(x, size=(size, size), mode="area")
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)

    def forward(self, images: Tensor) -> dict[str, Tensor]:  # (B, 3, S, S) in [0, 1]
        """Logits per attribute: ``{"gender": (B, 2), "age": (B, 9), "ethnicity": (B, 5)}``."""
        size = self.config.image_size
        if images.ndim != 4 or tuple(images.shape[1:]) != (3, size, size):
            raise AttributeClassifierError(
                f"classifier input must be (B, 3, {size}, {size}), got {tuple(images.shape)}: "
                "resize crops with prepare()"
            )
        x = self.features((images - INPUT_MEAN) / INPUT_STD)  # (B, C, S / 2^n, S / 2^n)
        x = self.hidden(x.mean(dim=(2, 3)))  # (B, hidden_dim)
        return {name: head(x) for name, head in self.heads.items()}


def label_targets(labels: list[dict[str, Any]]) -> dict[str, Tensor]:
    """Class indices of each attribute for a batch of label dicts: ``{name: (B,) int64}``,
    ``-1`` where a face has no label for it (masked out of the loss). Labels use the
    vocabularies of :mod:`speech2face.metrics.attributes`; age is in years (binned here)."""
    from speech2face.metrics.attributes import age_bin

    targets = {name: torch.full((len(labels),), -1, dtype=torch.long) for name in HEADS}
    for row, faces in enumerate(labels):
        for name, classes in ATTRIBUTE_CLASSES.items():
            value = faces.get(name)
            if value is None:
                continue
            if name == "age":
                value = age_bin(float(value))
            if value not in classes:
                raise AttributeClassifierError(
                    f"{name} label {value!r} is not one of {', '.join(classes)}"
                )
            targets[name][row] = classes.index(value)
    return targets

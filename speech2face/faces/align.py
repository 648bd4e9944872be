"""Aligned 224x224 face crops from five landmarks (a similarity transform onto a template).

The template is the 5-point template of ArcFace / InsightFace alignment (eyes, nose, mouth
corners in a 112x112 tight crop), shrunk about the crop's centre by :data:`LOOSENESS` and
raised by :data:`RAISE` so the whole head (forehead, chin and some hair) fits, the loose
framing VGG-Face was trained on.

Pixel convention: integer coordinates are pixel centres, in frames and crops alike (pixel
``i`` covers ``[i - 0.5, i + 0.5)``), as in MTCNN's and dlib's landmarks. PIL's affine
transform puts pixel centres at ``i + 0.5``; :func:`align_face` converts between the two.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = [
    "CROP_SIZE",
    "TEMPLATE",
    "align_face",
    "antialias_sigma",
    "similarity_transform",
    "transform_points",
]

CROP_SIZE = 224  # aligned crops are CROP_SIZE x CROP_SIZE RGB
# ArcFace's template in a 112x112 crop: left eye, right eye, nose, left and right mouth corner.
_ARCFACE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ]
)
LOOSENESS = 0.62  # template scale about the centre: the face fills ~62 % of the tight crop
RAISE = 0.07  # then moved up by this fraction of the crop, to keep the chin in
TEMPLATE = (
    ((_ARCFACE_112 / 112 - 0.5) * LOOSENESS + 0.5 - np.array([0.0, RAISE])) * CROP_SIZE
).astype(np.float32)  # (5, 2) x, y pixels in the 224x224 crop


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares rotation + uniform scale + translation mapping ``src`` onto ``dst``.

    ``src``, ``dst``: ``(K, 2)`` points. Returns the ``(2, 3)`` matrix ``M`` with
    ``dst ~= src @ M[:, :2].T + M[:, 2]`` (Umeyama 1991, reflections excluded).
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sigma, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rotation = u @ sign @ vt
    var_s = (s**2).sum() / len(src)
    scale = (sigma * np.diag(sign)).sum() / var_s if var_s > 0 else 1.0
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = mu_d - matrix[:, :2] @ mu_s
    return matrix


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a ``(2, 3)`` affine ``matrix`` to ``(K, 2)`` points -> ``(K, 2)`` float32."""
    points = np.asarray(points, dtype=np.float64)
    return (points @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


def antialias_sigma(scale: float) -> float:
    """Gaussian pre-filter (frame pixels) before resampling by ``scale`` (crop px per frame px).

    ``(1 / scale - 1) / 2`` for a reduction (scikit-image's ``rescale`` rule: 1.5 px for a
    4x reduction), 0 when the crop is as large as the face or larger.
    """
    return max(0.0, (1.0 / scale - 1.0) / 2.0)


def align_face(
    image: np.ndarray, landmarks: np.ndarray, size: int = CROP_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """Warp the face with 5 ``landmarks`` ``(5, 2)`` onto the template.

    ``image``: ``(H, W, 3)`` uint8 RGB. Returns the crop ``(size, size, 3)`` uint8 (black
    outside the frame) and the ``(2, 3)`` frame -> crop matrix (pixel centres at integers).
    A face larger in the frame than in the crop is blurred first (:func:`antialias_sigma`),
    only in the part of the frame that the crop covers, so it does not alias.
    """
    template = TEMPLATE * (size / CROP_SIZE)
    matrix = similarity_transform(landmarks, template)
    full = np.vstack([matrix, [0.0, 0.0, 1.0]])
    inverse = np.linalg.inv(full)[:2]  # crop -> frame, pixel centres at integers
    image = np.asarray(image)
    sigma = antialias_sigma(float(np.sqrt(abs(np.linalg.det(matrix[:, :2])))))
    if sigma > 0:
        # Blur just the frame region under the crop (plus the filter's reach): a 1080p
        # frame costs no more than the face in it.
        corners = np.array([[0, 0], [size - 1, 0], [0, size - 1], [size - 1, size - 1]])
        reach = 3 * sigma + 3  # the Gaussian's support and the bicubic kernel's
        low = np.floor(transform_points(corners, inverse).min(0) - reach).astype(int)
        high = np.ceil(transform_points(corners, inverse).max(0) + reach).astype(int)
        left, top = np.maximum(low, 0)
        right, bottom = np.minimum(high, [image.shape[1], image.shape[0]])
        if right > left and bottom > top:
            from scipy.ndimage import gaussian_filter

            # A true Gaussian: PIL's box-blur approximation leaves a +-3 % ripple at Nyquist.
            region = gaussian_filter(
                image[top:bottom, left:right].astype(np.float32), (sigma, sigma, 0), mode="nearest"
            )
            image = region.round().clip(0, 255).astype(np.uint8)
            inverse = inverse.copy()
            inverse[:, 2] -= (left, top)  # frame coordinates -> region coordinates
    # PIL maps output pixel centres (i + 0.5) to input coordinates whose pixel centres are
    # also at + 0.5: shift into that convention and back.
    pil = inverse.copy()
    pil[:, 2] += 0.5 - inverse[:, :2] @ np.array([0.5, 0.5])
    crop = Image.fromarray(np.ascontiguousarray(image)).transform(
        (size, size),
        Image.Transform.AFFINE,
        data=tuple(pil.flatten()),
        resample=Image.Resampling.BICUBIC,
    )
    return np.asarray(crop), matrix.astype(np.float32)

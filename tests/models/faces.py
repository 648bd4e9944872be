"""Faces for tests: synthetic crops drawn with PIL (skin oval, eyes, brows, nose, mouth), and
real faces that ship in scikit-image."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw


def draw_face(
    size: int = 224,
    skin: tuple[int, int, int] = (224, 180, 150),
    eye_gap: float = 0.0,
    mouth_width: float = 0.0,
    face_width: float = 0.0,
) -> np.ndarray:
    """A frontal cartoon face filling a ``size`` crop: ``(size, size, 3)`` uint8 RGB.

    ``eye_gap``, ``mouth_width`` and ``face_width`` (fractions of the crop, about -0.05..0.05)
    vary the identity.
    """
    s = size / 224
    image = Image.new("RGB", (size, size), (190, 195, 200))
    d = ImageDraw.Draw(image)

    def box(x0: float, y0: float, x1: float, y1: float) -> tuple[float, float, float, float]:
        return (x0 * s, y0 * s, x1 * s, y1 * s)

    fw = face_width * 224
    d.ellipse(box(42 - fw, 20, 182 + fw, 210), fill=skin)
    d.chord(box(38 - fw, 5, 186 + fw, 110), 180, 360, fill=(60, 40, 30))  # hair
    eg = eye_gap * 224
    for cx in (82 - eg, 142 + eg):
        d.ellipse(box(cx - 14, 92, cx + 14, 106), fill=(250, 250, 250))
        d.ellipse(box(cx - 6, 93, cx + 6, 105), fill=(50, 35, 25))
        d.line(box(cx - 18, 80, cx + 16, 76), fill=(70, 50, 40), width=max(1, int(5 * s)))
    d.polygon([(112 * s, 105 * s), (100 * s, 145 * s), (124 * s, 145 * s)], fill=(205, 155, 125))
    mw = mouth_width * 224
    d.chord(box(88 - mw, 155, 136 + mw, 180), 0, 180, fill=(160, 60, 60))
    return np.array(image)


def face_batch(*faces: np.ndarray) -> torch.Tensor:
    """uint8 ``(H, W, 3)`` images -> float crops ``(B, 3, H, W)`` in [0, 1]."""
    return torch.stack([torch.from_numpy(f).permute(2, 0, 1).float() / 255 for f in faces])


def real_faces(lfw_faces: int = 30) -> list[np.ndarray]:
    """Real frames ``(H, W, 3)`` uint8: scikit-image's astronaut, then ``lfw_faces`` LFW
    faces (lfw_subset's first 100 images are faces) upscaled 25 -> 160 px on a 320x320 grey
    frame, where MTCNN finds them all."""
    from skimage import data

    frames = [np.asarray(data.astronaut())]
    for face in data.lfw_subset()[:lfw_faces]:
        grey = Image.fromarray((face * 255).astype(np.uint8)).resize(
            (160, 160), Image.Resampling.BICUBIC
        )
        canvas = np.full((320, 320), 128, np.uint8)
        canvas[80:240, 80:240] = np.asarray(grey)
        frames.append(np.ascontiguousarray(np.repeat(canvas[..., None], 3, axis=2)))
    return frames

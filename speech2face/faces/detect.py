"""Face detection with MTCNN (facenet-pytorch), choosing the speaker, scoring frontality.

MTCNN gives, per face, a box ``(x0, y0, x1, y1)``, a probability and five landmarks in the
order left eye, right eye, nose, left mouth corner, right mouth corner (``(5, 2)`` as x, y
pixels; "left" is the image's left). Its weights ship with facenet-pytorch (offline).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DETECT_MAX_SIDE",
    "MAX_CENTRE_DISTANCE",
    "MIN_FACE_PROB",
    "MIN_FACE_SIZE",
    "Detection",
    "FaceDetector",
    "box_distance",
    "frontality",
    "pick_detection",
]

DETECT_MAX_SIDE = 640  # frames larger than this are downscaled for detection only
MIN_FACE_PROB = 0.9  # MTCNN probability below which a detection is ignored
MIN_FACE_SIZE = 40  # pixels (in the original frame): smaller faces are ignored
# Given the speaker's face centre, a detection counts only when its box holds the centre or
# lies within this many box widths of it.
MAX_CENTRE_DISTANCE = 1.0
# MTCNN runs many tiny convolutions; on CPU one torch thread is fastest (on a 2-core machine,
# 6 frames of 256x256 take 0.1 s on one thread and 2 s on two).
DETECT_THREADS = 1
# Vertical position of the nose between the eye line (0) and the mouth line (1) in a frontal
# face: 0.495 in the 5-point template of ArcFace / InsightFace alignment.
FRONTAL_NOSE_DEPTH = 0.5


@dataclass(frozen=True)
class Detection:
    """One face in one frame, in the frame's pixel coordinates."""

    box: np.ndarray  # (4,) float32: x0, y0, x1, y1
    prob: float
    landmarks: np.ndarray  # (5, 2) float32: eyes (left, right), nose, mouth (left, right)

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def size(self) -> float:
        """The shorter side of the box, in pixels."""
        return float(min(self.box[2] - self.box[0], self.box[3] - self.box[1]))

    @property
    def centre(self) -> np.ndarray:  # (2,)
        return np.array(
            [(self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2], dtype=np.float32
        )


def frontality(landmarks: np.ndarray) -> float:
    """How frontal a face is, from its five landmarks ``(5, 2)``: 1 frontal, 0 profile.

    In the frame of the eye line (x along the eyes, y perpendicular), the yaw term is the
    nose's sideways offset from the eyes' midpoint over half the eye distance, and the pitch
    term is how far the nose's depth between the eye line and the mouth line departs from a
    frontal face's (:data:`FRONTAL_NOSE_DEPTH`). The score is
    ``(1 - |yaw|) * (1 - |depth - 0.5| / 0.5)``, each factor clipped to [0, 1]; roll does not
    count (alignment removes it).
    """
    pts = np.asarray(landmarks, dtype=np.float64)
    left_eye, right_eye, nose = pts[0], pts[1], pts[2]
    mouth = (pts[3] + pts[4]) / 2
    axis = right_eye - left_eye
    half_gap = np.linalg.norm(axis) / 2
    if half_gap < 1e-6:
        return 0.0
    u = axis / (2 * half_gap)
    v = np.array([-u[1], u[0]])  # points down the face
    mid = (left_eye + right_eye) / 2
    yaw = float((nose - mid) @ u) / half_gap
    mouth_depth = float((mouth - mid) @ v)
    if mouth_depth <= 1e-6:
        return 0.0
    depth = float((nose - mid) @ v) / mouth_depth
    yaw_term = max(0.0, 1.0 - abs(yaw))
    pitch_term = max(0.0, 1.0 - abs(depth - FRONTAL_NOSE_DEPTH) / FRONTAL_NOSE_DEPTH)
    return yaw_term * pitch_term


def pick_detection(
    detections: Sequence[Detection],
    centre: tuple[float, float] | None = None,
    min_prob: float = MIN_FACE_PROB,
    min_size: float = MIN_FACE_SIZE,
) -> Detection | None:
    """The speaker's face: the confident detection nearest ``centre`` (x, y pixels), else
    the largest one; ``None`` when no detection passes ``min_prob`` and ``min_size``.

    With a ``centre``, only a detection near it counts: its box contains the centre, or
    lies within :data:`MAX_CENTRE_DISTANCE` box widths of it. A frame whose faces are all
    farther away has no speaker face (``None``), so a bystander cannot stand in for the
    speaker.
    """
    good = [d for d in detections if d.prob >= min_prob and d.size >= min_size]
    if centre is not None:
        point = np.asarray(centre, dtype=np.float32)
        good = [d for d in good if box_distance(d.box, point) <= MAX_CENTRE_DISTANCE * d.width]
        if not good:
            return None
        return min(good, key=lambda d: float(np.linalg.norm(d.centre - point)))
    if not good:
        return None
    return max(good, key=lambda d: d.size)


def box_distance(box: np.ndarray, point: np.ndarray) -> float:
    """Distance in pixels from ``point`` (x, y) to the box ``(x0, y0, x1, y1)``; 0 inside."""
    dx = max(float(box[0]) - float(point[0]), 0.0, float(point[0]) - float(box[2]))
    dy = max(float(box[1]) - float(point[1]), 0.0, float(point[1]) - float(box[3]))
    return float(np.hypot(dx, dy))


class FaceDetector:
    """MTCNN over batches of same-sized frames.

    Args:
        device: torch device for MTCNN ("cpu", "cuda"); the weights ship with facenet-pytorch.
        max_side: frames whose longer side exceeds this are downscaled for detection; boxes
            and landmarks are mapped back to the original frame.
        min_face_size: MTCNN's smallest face, in pixels of the original frame.
        threads: torch CPU threads while detecting (``None``: leave torch's setting).
    """

    def __init__(
        self,
        device: str = "cpu",
        max_side: int = DETECT_MAX_SIDE,
        min_face_size: int = MIN_FACE_SIZE,
        threads: int | None = DETECT_THREADS,
    ) -> None:
        from facenet_pytorch import MTCNN

        self.threads = threads
        self.max_side = int(max_side)
        self.min_face_size = int(min_face_size)
        self.device = device
        self._mtcnn = MTCNN(keep_all=True, device=device, min_face_size=20, post_process=False)

    def detect(self, frames: np.ndarray) -> list[list[Detection]]:
        """``frames``: ``(N, H, W, 3)`` uint8 RGB -> N lists of detections (best first)."""
        from PIL import Image

        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be (N, H, W, 3) RGB, got {frames.shape}")
        n, height, width = frames.shape[:3]
        if n == 0:
            return []
        scale = min(1.0, self.max_side / max(height, width))
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            batch = np.stack(
                [
                    np.asarray(Image.fromarray(f).resize(size, Image.Resampling.BILINEAR))
                    for f in frames
                ]
            )
        else:
            batch = frames
        # MTCNN's smallest face, in pixels of the image it sees.
        self._mtcnn.min_face_size = max(12, int(self.min_face_size * scale))
        boxes, probs, points = self._detect(batch)
        out: list[list[Detection]] = []
        for frame_boxes, frame_probs, frame_points in zip(boxes, probs, points, strict=True):
            found: list[Detection] = []
            if frame_boxes is not None:
                frame_boxes = np.asarray(frame_boxes).astype(np.float32) / scale
                frame_points = np.asarray(frame_points).astype(np.float32) / scale
                frame_probs = np.asarray(frame_probs).astype(np.float32)
                for box, prob, pts in zip(frame_boxes, frame_probs, frame_points, strict=True):
                    found.append(Detection(box=box[:4], prob=float(prob), landmarks=pts))
            out.append(found)
        return out

    def _detect(self, batch: np.ndarray):
        import torch

        if self.threads is None or self.device != "cpu":
            return self._mtcnn.detect(batch, landmarks=True)
        before = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            return self._mtcnn.detect(batch, landmarks=True)
        finally:
            torch.set_num_threads(before)

"""Faces: MTCNN detection, choosing and following the speaker, frontality, alignment,
68 landmarks.

Conventions: frames and crops are ``(H, W, 3)`` uint8 RGB; points are (x, y) pixels;
aligned crops are 224x224; the decoder's landmarks are dlib's 68 points in crop pixels.
"""

from speech2face.faces.align import (
    CROP_SIZE,
    TEMPLATE,
    align_face,
    similarity_transform,
    transform_points,
)
from speech2face.faces.detect import Detection, FaceDetector, frontality, pick_detection
from speech2face.faces.landmarks import NUM_LANDMARKS, Landmarker
from speech2face.faces.track import (
    SAME_PERSON_DISTANCE,
    FaceIdentity,
    SpeakerTrack,
    follow_speaker,
)

__all__ = [
    "CROP_SIZE",
    "NUM_LANDMARKS",
    "SAME_PERSON_DISTANCE",
    "TEMPLATE",
    "Detection",
    "FaceDetector",
    "FaceIdentity",
    "Landmarker",
    "SpeakerTrack",
    "align_face",
    "follow_speaker",
    "frontality",
    "pick_detection",
    "similarity_transform",
    "transform_points",
]

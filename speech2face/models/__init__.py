"""The Speech2Face networks: face encoders, and the builders that pick one by name."""

from speech2face.models.builders import FACE_ENCODERS, build_face_encoder
from speech2face.models.face_encoder import DlibFaceEncoder, FaceEncoder, FaceEncoderError

__all__ = [
    "FACE_ENCODERS",
    "DlibFaceEncoder",
    "FaceEncoder",
    "FaceEncoderError",
    "build_face_encoder",
]

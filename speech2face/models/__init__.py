"""The Speech2Face networks: voice encoder, face encoders, face decoder, the attribute
classifier, and checkpoints.

Layers live in :mod:`speech2face.models.layers`, the assembled networks in their own
modules, and :func:`build_face_encoder` / :func:`load_checkpoint` build them by name or
from a file.
"""

from speech2face.models.attribute_classifier import (
    AttributeClassifier,
    AttributeClassifierConfig,
    AttributeClassifierError,
)
from speech2face.models.builders import FACE_ENCODERS, build_face_encoder
from speech2face.models.checkpoint import (
    MODEL_KINDS,
    CheckpointError,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from speech2face.models.face_decoder import (
    DecoderOutput,
    FaceDecoder,
    FaceDecoderConfig,
    FaceDecoderError,
)
from speech2face.models.face_encoder import (
    DlibFaceEncoder,
    FaceEncoder,
    FaceEncoderError,
    FaceNetConfig,
    FaceNetEncoder,
    VGGFace,
    VGGFaceConfig,
)
from speech2face.models.landmarks import (
    NUM_LANDMARKS,
    LandmarkError,
    default_mean_landmarks,
    mean_geometry,
)
from speech2face.models.voice_encoder import VoiceEncoder, VoiceEncoderConfig, VoiceEncoderError

__all__ = [
    "AttributeClassifier",
    "AttributeClassifierConfig",
    "AttributeClassifierError",
    "FACE_ENCODERS",
    "MODEL_KINDS",
    "NUM_LANDMARKS",
    "CheckpointError",
    "DecoderOutput",
    "DlibFaceEncoder",
    "FaceDecoder",
    "FaceDecoderConfig",
    "FaceDecoderError",
    "FaceEncoder",
    "FaceEncoderError",
    "FaceNetConfig",
    "FaceNetEncoder",
    "LandmarkError",
    "VGGFace",
    "VGGFaceConfig",
    "VoiceEncoder",
    "VoiceEncoderConfig",
    "VoiceEncoderError",
    "build_face_encoder",
    "default_mean_landmarks",
    "load_checkpoint",
    "mean_geometry",
    "read_checkpoint",
    "save_checkpoint",
]

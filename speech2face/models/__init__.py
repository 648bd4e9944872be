"""The Speech2Face networks: voice encoders (the paper's, and a pretrained GE2E speaker encoder
with a head), face encoders, face decoder, the attribute classifier, and checkpoints.

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
    VOICE_ENCODERS,
    CheckpointError,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from speech2face.models.dlib_encoder import DlibFaceEncoder
from speech2face.models.dlib_resnet import DlibResNet
from speech2face.models.face_decoder import (
    DecoderOutput,
    FaceDecoder,
    FaceDecoderConfig,
    FaceDecoderError,
)
from speech2face.models.face_encoder import (
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
from speech2face.models.speaker_encoder import (
    GE2EEncoderConfig,
    GE2EEncoderError,
    GE2EVoiceEncoder,
    GE2EWeightsError,
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
    "DlibResNet",
    "FaceDecoder",
    "FaceDecoderConfig",
    "FaceDecoderError",
    "FaceEncoder",
    "FaceEncoderError",
    "FaceNetConfig",
    "FaceNetEncoder",
    "GE2EEncoderConfig",
    "GE2EEncoderError",
    "GE2EVoiceEncoder",
    "GE2EWeightsError",
    "LandmarkError",
    "VGGFace",
    "VGGFaceConfig",
    "VOICE_ENCODERS",
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

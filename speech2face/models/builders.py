"""Build models by name: the entry point for code that does not use Hydra configs."""

from __future__ import annotations

from typing import Any

from speech2face.models.dlib_encoder import DlibFaceEncoder
from speech2face.models.face_encoder import (
    FaceEncoder,
    FaceEncoderError,
    FaceNetEncoder,
    VGGFace,
)

FACE_ENCODERS: dict[str, type[FaceEncoder]] = {
    "vggface": VGGFace,
    "facenet": FaceNetEncoder,
    "dlib": DlibFaceEncoder,
}


def build_face_encoder(name: str, **kwargs: Any) -> FaceEncoder:
    """Face encoder ``name`` (one of :data:`FACE_ENCODERS`), built with ``kwargs``.

    The names match the ``face_encoder=<name>`` config choices, e.g.
    ``build_face_encoder("vggface", weights="vgg_face_dag")``.
    """
    try:
        cls = FACE_ENCODERS[name]
    except KeyError:
        known = ", ".join(sorted(FACE_ENCODERS))
        raise FaceEncoderError(f"unknown face encoder '{name}' (known: {known})") from None
    return cls(**kwargs)

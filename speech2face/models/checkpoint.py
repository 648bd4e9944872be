"""Model checkpoints that rebuild their own model: ``{"kind", "config", "state_dict"}``.

``config`` is the ``asdict`` of the model's architecture dataclass, so
:func:`load_checkpoint` needs nothing but the file. Files are read with
``torch.load(..., weights_only=True)``: plain containers and tensors only, no code.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from speech2face.errors import S2FError
from speech2face.fileio import atomic_outputs
from speech2face.models._io import safe_load
from speech2face.models.attribute_classifier import AttributeClassifier
from speech2face.models.face_decoder import FaceDecoder
from speech2face.models.face_encoder import FaceNetEncoder, VGGFace
from speech2face.models.speaker_encoder import GE2EVoiceEncoder
from speech2face.models.voice_encoder import VoiceEncoder

MODEL_KINDS: dict[str, type[nn.Module]] = {
    VoiceEncoder.kind: VoiceEncoder,
    GE2EVoiceEncoder.kind: GE2EVoiceEncoder,
    FaceDecoder.kind: FaceDecoder,
    VGGFace.kind: VGGFace,
    FaceNetEncoder.kind: FaceNetEncoder,
    AttributeClassifier.kind: AttributeClassifier,
}
# The kinds task=voice trains: spectrogram (B, 2, T, 257) -> face feature (B, out_dim).
VOICE_ENCODERS: tuple[type[nn.Module], ...] = (VoiceEncoder, GE2EVoiceEncoder)


class CheckpointError(S2FError, ValueError):
    """A checkpoint file that is missing, unreadable, or of an unknown kind."""


def checkpoint_dict(model: nn.Module, **extra: Any) -> dict[str, Any]:
    """``{"kind", "config", "state_dict"}`` (plus ``extra``) for one of :data:`MODEL_KINDS`."""
    kind = getattr(model, "kind", None)
    if kind not in MODEL_KINDS or not isinstance(model, MODEL_KINDS[kind]):
        known = ", ".join(MODEL_KINDS)
        raise CheckpointError(f"cannot checkpoint a {type(model).__name__} (kinds: {known})")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return {"kind": kind, "config": asdict(model.config), "state_dict": state, **extra}


def save_checkpoint(model: nn.Module, path: str | os.PathLike, **extra: Any) -> Path:
    """Write ``model`` with its architecture to ``path`` (atomically); returns the path.

    ``extra`` entries (numbers, strings, tensors) are stored beside the model, e.g. the step.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_outputs(path) as (tmp,):
        torch.save(checkpoint_dict(model, **extra), tmp)
    return path


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint's dictionary, read with ``weights_only=True``."""
    payload = safe_load(path, CheckpointError, "checkpoint")
    if not isinstance(payload, dict) or not {"kind", "config", "state_dict"} <= set(payload):
        raise CheckpointError(f"{path} is not a speech2face model checkpoint")
    if payload["kind"] not in MODEL_KINDS:
        raise CheckpointError(f"{path} holds an unknown model kind '{payload['kind']}'")
    return payload


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu", kind: str | None = None
) -> nn.Module:
    """Rebuild the model stored at ``path`` from the file alone, in evaluation mode.

    Args:
        path: a file written by :func:`save_checkpoint`.
        map_location: device to put the model on.
        kind: if given, the kind the file must hold (e.g. ``"face_decoder"``).
    """
    payload = read_checkpoint(path)
    if kind is not None and payload["kind"] != kind:
        raise CheckpointError(f"{path} holds a '{payload['kind']}', not a '{kind}'")
    model_class = MODEL_KINDS[payload["kind"]]
    state_dict = payload["state_dict"]
    if model_class is FaceDecoder:  # its mean geometry is data, stored with the weights
        model = FaceDecoder.from_config(payload["config"], state_dict.get("mean_landmarks"))
    else:
        model = model_class.from_config(payload["config"])
    model.load_state_dict(state_dict, strict=True)
    return model.to(map_location).eval()

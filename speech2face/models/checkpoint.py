"""Model checkpoints that rebuild their own model: ``{"kind", "config", "state_dict"}``.

``config`` is the ``asdict`` of the model's architecture dataclass, so
:func:`load_checkpoint` needs nothing but the file. Files are read with
``torch.load(..., weights_only=True)``: plain containers and tensors only, no code.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
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
from speech2face.models.limits import check_model_config
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
    check_model_config(payload, str(path), "", CheckpointError, MODEL_KINDS)
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
    model = build_checked(payload, str(path), "", CheckpointError)
    return model.to(map_location).eval()


def build_checked(
    entry: dict[str, Any], where: str, field: str, error: type[S2FError], assign: bool = False
) -> nn.Module:
    """The model of a ``{"kind", "config", "state_dict"}`` entry whose config
    :func:`~speech2face.models.limits.check_model_config` accepted, weights loaded, on the CPU.

    It is built on the meta device first (nothing allocated) and the state dict compared
    with it, so a config that does not make the stored tensors' model, or tensors of other
    shapes, are refused in one line naming ``where`` and ``field`` before any weight is made.
    With ``assign`` the meta model takes the entry's tensors as its own (no initialisation,
    no copy) when all of its tensors are in the state dict.
    """
    prefix = f"{field}." if field else ""
    cls = MODEL_KINDS[entry["kind"]]
    state = entry["state_dict"]

    def make() -> nn.Module:
        if cls is FaceDecoder:  # its mean geometry is data, stored with the weights
            return FaceDecoder.from_config(entry["config"], state.get("mean_landmarks"))
        return cls.from_config(entry["config"])

    try:
        with torch.device("meta"):
            shell = make()
    except (S2FError, TypeError, ValueError, RuntimeError, ZeroDivisionError) as cause:
        reason = " ".join(str(cause).split()) or type(cause).__name__
        raise error(f"{where}: {prefix}config does not make a {entry['kind']}: {reason}") from None
    check_state_fits(shell, state, where, field, error)
    if assign and set(shell.state_dict()) == {name for name, _ in _all_tensors(shell)}:
        model = shell
    else:  # a model that makes tensors of its own (buffers outside the state dict)
        model, assign = make(), False
    try:
        model.load_state_dict(state, strict=True, assign=assign)
    except (RuntimeError, ValueError) as cause:
        reason = " ".join(str(cause).split())
        raise error(f"{where}: {prefix}state_dict does not load: {reason[:300]}") from None
    return model


def check_state_fits(
    model: nn.Module, state: dict[str, Any], where: str, field: str, error: type[S2FError]
) -> None:
    """Refuse, in one line, a state dict whose names, shapes or dtypes are not ``model``'s
    (built from the same entry's config, on the meta device)."""
    prefix = f"{field}." if field else ""
    expected = model.state_dict()
    problems = [f"missing {name}" for name in expected if name not in state]
    problems += [f"unexpected {name}" for name in state if name not in expected]
    for name, want in expected.items():
        have = state.get(name)
        if name not in state:
            continue
        if not isinstance(have, torch.Tensor):
            problems.append(f"{name} is a {type(have).__name__}, not a tensor")
        elif have.shape != want.shape:
            problems.append(
                f"size mismatch for {name}: the file holds {tuple(have.shape)}, the config "
                f"makes {tuple(want.shape)}"
            )
        elif have.dtype != want.dtype:
            problems.append(f"{name} is {have.dtype}, the model takes {want.dtype}")
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise error(
            f"{where}: {prefix}state_dict does not fit the {entry_kind(model)} its config "
            f"describes: {problems[0]}{more}"
        )


def entry_kind(model: nn.Module) -> str:
    return str(getattr(model, "kind", type(model).__name__))


def _all_tensors(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """Every parameter and buffer, persistent or not."""
    yield from model.named_parameters()
    yield from model.named_buffers()

"""Training checkpoints: one file that rebuilds its model and resumes its run.

A training checkpoint is a model checkpoint (``{"kind", "config", "state_dict"}`` of the
trained network, so :func:`speech2face.models.load_checkpoint` reads it) with more beside it:

- ``training``: the task, the step, the data position (epoch, batches read in it, and
  ``data``: where every loader worker of every process stands in the epoch, with the
  samples read before the run began), the settings that define the schedule and the data
  order (``settings``, compared on resume: :mod:`speech2face.training.schedule`), the
  optimiser and scheduler states (``continued``: the start of a schedule continued with new
  settings), the RNG states, the best validation value so far;
- ``bundle``: what evaluation and inference need besides the trained network: the face
  encoder's name and feature width, the audio settings, the composed config (YAML), and for
  a voice encoder the frozen face decoder it was trained against (with its mean geometry).

Files are plain containers and tensors, read with ``torch.load(weights_only=True)``.
``<output_dir>/checkpoints/`` holds ``step-NNNNNNNN.pt`` (the last ``keep_last``),
``last.pt`` (a link to the newest) and ``best.pt`` (a link to the best); each appears
atomically.
"""

from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from speech2face.errors import S2FError
from speech2face.fileio import atomic_outputs, temporary_path
from speech2face.losses import project_from_mean
from speech2face.models._io import safe_load
from speech2face.models.checkpoint import (
    MODEL_KINDS,
    VOICE_ENCODERS,
    build_checked,
    checkpoint_dict,
)
from speech2face.models.face_decoder import FaceDecoder
from speech2face.models.limits import (
    FLOAT,
    INT,
    MAX_CLIP_SAMPLES,
    MAX_FFT,
    MAX_SAMPLE_RATE,
    MAX_WIDTH,
    MIN_CLIP_SAMPLES,
    check_model_config,
    describe,
    in_range,
    refuse,
)
from speech2face.models.speaker_encoder import GE2EVoiceEncoder
from speech2face.models.voice_encoder import VoiceEncoder

FORMAT = "speech2face.training"
VERSION = 1
CHECKPOINT_DIR = "checkpoints"
LAST = "last.pt"
BEST = "best.pt"
_STEP_FILE = re.compile(r"step-(\d{8,})\.pt")


class TrainingCheckpointError(S2FError, ValueError):
    """A training checkpoint that is missing, unreadable or not this project's."""


# --------------------------------------------------------------------------- RNG states


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and CUDA) global RNG states, as plain values/tensors."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 (the global one)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned (CUDA states only where CUDA is in use)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    state_tuple = (kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached)
    np.random.set_state(state_tuple)  # noqa: NPY002 (the global one)
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(cuda)


# --------------------------------------------------------------------------- writing


def checkpoint_dir(output_dir: str | os.PathLike) -> Path:
    return Path(output_dir) / CHECKPOINT_DIR


def step_files(directory: str | os.PathLike) -> list[tuple[int, Path]]:
    """``(step, path)`` of the ``step-*.pt`` files in ``directory``, oldest first."""
    found = []
    for path in Path(directory).glob("step-*.pt"):
        match = _STEP_FILE.fullmatch(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def _link(source: Path, target: Path) -> None:
    """Point ``target`` at ``source``'s content atomically (a hard link, else a copy)."""
    tmp = temporary_path(target)
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:  # no hard links on this file system
        import shutil

        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def save_training_checkpoint(
    output_dir: str | os.PathLike,
    payload: dict[str, Any],
    step: int,
    keep_last: int,
    is_best: bool,
) -> Path:
    """Write ``payload`` as ``step-<step>.pt``, point ``last.pt`` (and ``best.pt`` when
    ``is_best``, or when there is none yet) at it, and delete step files beyond the last
    ``keep_last`` (never the one ``best.pt`` holds). Returns the step file's path."""
    directory = checkpoint_dir(output_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"step-{step:08d}.pt"
    with atomic_outputs(path) as (tmp,):
        torch.save(payload, tmp)
    best = directory / BEST
    if is_best or not best.exists():
        _link(path, best)
    _link(path, directory / LAST)
    steps = step_files(directory)
    for _, old in steps[: max(len(steps) - max(int(keep_last), 1), 0)]:
        if not _same(old, best):
            old.unlink(missing_ok=True)
    for stale in directory.glob(".*.tmp"):  # left by a run killed while writing
        if not stale.name.endswith(f".{os.getpid()}.tmp"):
            stale.unlink(missing_ok=True)
    return path


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


# --------------------------------------------------------------------------- reading


# What a checkpoint's training and bundle entries hold, and the ranges they take (see
# speech2face.models.limits for why each bound). The step is a count of optimiser steps: up
# to 10^12, far beyond any run (the paper's is ~10^5).
MAX_STEP = 10**12
TRAINING_FIELDS = {"step": (INT, 0, MAX_STEP)}
BUNDLE_FIELDS = {"feature_dim": (INT, 1, MAX_WIDTH)}
AUDIO_FIELDS = {
    "sample_rate": (INT, 1, MAX_SAMPLE_RATE),
    "clip_samples": (INT, MIN_CLIP_SAMPLES, MAX_CLIP_SAMPLES),
    "win_length": (INT, 1, MAX_FFT),
    "hop_length": (INT, 1, MAX_FFT),
    "n_fft": (INT, 1, MAX_FFT),
    # the spectrogram's compression exponent: 0.3 in the paper; 1 is no compression
    "power_law": (FLOAT, 0.0, 1.0),
}
MAX_NAME_LENGTH = 64  # characters of a face encoder's name (vggface, facenet, dlib)


def read_training_checkpoint(path: str | os.PathLike, mmap: bool = False) -> dict[str, Any]:
    """A training checkpoint's dictionary (``weights_only=True``), checked to be one; with
    ``mmap`` its tensors are mapped from the file, not read (for models that only infer)."""
    payload = safe_load(path, TrainingCheckpointError, "checkpoint", mmap=mmap)
    if (
        not isinstance(payload, dict)
        or payload.get("format") != FORMAT
        or not {"kind", "config", "state_dict", "training", "bundle"} <= set(payload)
    ):
        raise TrainingCheckpointError(f"{path} is not a speech2face training checkpoint")
    if payload.get("version") != VERSION:
        raise TrainingCheckpointError(
            f"{path} is a version {payload.get('version')} training checkpoint; this "
            f"speech2face reads version {VERSION}"
        )
    if payload["kind"] not in MODEL_KINDS:
        raise TrainingCheckpointError(f"{path} holds an unknown model kind '{payload['kind']}'")
    check_model_config(payload, str(path), "", TrainingCheckpointError, MODEL_KINDS)
    training = payload["training"]
    if not isinstance(training, dict):
        raise TrainingCheckpointError(f"{path}: training is not a table of settings")
    for name, (kind, low, high) in TRAINING_FIELDS.items():
        if name not in training:
            raise TrainingCheckpointError(f"{path}: training.{name} is missing")
        if not in_range(kind, training[name], low, high):
            expected = describe(kind, low, high)
            refuse(str(path), f"training.{name}", training[name], expected, TrainingCheckpointError)
    if not isinstance(training.get("task"), str):
        raise TrainingCheckpointError(f"{path}: training.task is missing or not a task's name")
    return payload


def resume_path(output_dir: str | os.PathLike) -> Path | None:
    """The newest checkpoint under ``output_dir`` (``last.pt``), or ``None``."""
    last = checkpoint_dir(output_dir) / LAST
    return last if last.is_file() else None


def build_model(
    entry: dict[str, Any],
    assign: bool = False,
    source: str | os.PathLike = "a checkpoint",
    field: str = "",
) -> nn.Module:
    """The model of a ``{"kind", "config", "state_dict"}`` entry, weights loaded, on the CPU.

    The entry's config is checked against :mod:`speech2face.models.limits` and the model
    built on the meta device first, so a config out of range or one that does not make the
    stored tensors' model is refused in one line naming ``source`` (the file) and ``field``
    (the entry's place in it, ``""`` at the top) before any weight is allocated.

    With ``assign`` the model stays on the meta device and takes the entry's tensors as
    its own: no random initialisation and no copy (the paper's voice encoder spends a second
    initialising weights that are then overwritten, the decoder a third of one), for a
    model that only infers and an entry that is not used again. A model that makes tensors
    of its own (buffers outside the state dict) is built the ordinary way.
    """
    where = os.fspath(source)
    check_model_config(entry, where, field, TrainingCheckpointError, MODEL_KINDS)
    model = build_checked(entry, where, field, TrainingCheckpointError, assign=assign)
    if assign and isinstance(model, FaceDecoder):  # its mean geometry, checked as at a build
        try:
            model.set_mean_geometry(model.mean_landmarks)
        except S2FError as error:
            prefix = f"{field}." if field else ""
            raise type(error)(f"{where}: {prefix}state_dict.mean_landmarks: {error}") from None
    return model


def model_entry(model: nn.Module) -> dict[str, Any]:
    """``{"kind", "config", "state_dict"}`` of a model (unwrapped from DDP / compile)."""
    return checkpoint_dict(unwrap(model))


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside DDP and ``torch.compile`` wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


# --------------------------------------------------------------------------- bundles


@dataclass
class Bundle:
    """What a training checkpoint holds for evaluation and inference.

    Attributes:
        voice_encoder: the trained voice encoder (``None`` in a face decoder checkpoint).
        face_decoder: the face decoder (the frozen one a voice encoder was trained against).
        face_encoder: the face encoder's name (``vggface``, ``facenet``, ``dlib``).
        feature_dim: its feature width.
        audio: the audio settings (sample rate, clip length, STFT).
        config: the composed training config, as YAML text.
        task: ``voice`` or ``decoder``; step: the training step.
        mean_feature: ``(feature_dim,)`` the mean face feature of the training split (a
            voice checkpoint; ``None`` otherwise): the "mean face" baseline of evaluation.
        feature_radius: set when the voice encoder was trained on directions from the mean
            face (``loss.voice=centred_cosine``): :meth:`features` places each prediction
            at this distance from ``mean_feature``, the training faces' RMS distance.
    """

    voice_encoder: VoiceEncoder | GE2EVoiceEncoder | None
    face_decoder: FaceDecoder
    face_encoder: str
    feature_dim: int
    audio: dict[str, Any]
    config: str
    task: str
    step: int
    mean_feature: Tensor | None = None
    feature_radius: float | None = None

    def to(self, device: str | torch.device) -> Bundle:
        if self.voice_encoder is not None:
            self.voice_encoder.to(device)
        self.face_decoder.to(device)
        if self.mean_feature is not None:
            self.mean_feature = self.mean_feature.to(device)
        return self

    @torch.no_grad()
    def features(self, spec: Tensor) -> Tensor:  # (B, 2, T, 257) -> (B, feature_dim)
        """The voice encoder's predicted face features."""
        if self.voice_encoder is None:
            raise TrainingCheckpointError("this checkpoint holds no voice encoder")
        return self.place(self.voice_encoder(spec))

    def place(self, outputs: Tensor) -> Tensor:  # (B, feature_dim) -> (B, feature_dim)
        """The face features the voice encoder's raw ``outputs`` stand for: as they are, or
        placed at ``feature_radius`` from the mean face in their direction (averages of
        several windows' outputs go through here too)."""
        if self.feature_radius is not None and self.mean_feature is not None:
            return project_from_mean(outputs, self.mean_feature, self.feature_radius)
        return outputs

    @torch.no_grad()
    def portrait(self, features: Tensor) -> Tensor:  # (B, feature_dim) -> (B, 3, H, W)
        """The face decoder's portraits in [0, 1]."""
        return self.face_decoder.render(features)

    @torch.no_grad()
    def __call__(self, spec: Tensor) -> Tensor:  # (B, 2, T, 257) -> (B, 3, H, W)
        """Spectrogram -> predicted feature -> portrait."""
        return self.portrait(self.features(spec))


def _mean_feature(value: Any, dim: int, path: str | os.PathLike) -> Tensor | None:
    if value is None:
        return None
    if not isinstance(value, Tensor) or value.shape != (dim,):
        raise TrainingCheckpointError(f"{path}: its mean feature is not a ({dim},) tensor")
    return value.float()


def _radius(value: Any, path: str | os.PathLike) -> float | None:
    if value is None:
        return None
    if not isinstance(value, float) or not value > 0:
        raise TrainingCheckpointError(f"{path}: its feature radius is not a positive number")
    return value


def check_bundle(bundle: Any, path: str | os.PathLike) -> None:
    """Refuse, in one line naming ``path`` and the field, a bundle with a setting missing,
    out of range or of the wrong type (before anything is built from it)."""
    where = os.fspath(path)
    if not isinstance(bundle, dict):
        raise TrainingCheckpointError(f"{where}: bundle is not a table of settings")
    for name in ("face_encoder", "feature_dim", "audio", "config"):
        if name not in bundle:
            raise TrainingCheckpointError(f"{where}: bundle.{name} is missing")
    name = bundle["face_encoder"]
    if not (isinstance(name, str) and 0 < len(name) <= MAX_NAME_LENGTH):
        expected = f"a face encoder's name (at most {MAX_NAME_LENGTH} characters)"
        refuse(where, "bundle.face_encoder", name, expected, TrainingCheckpointError)
    if not isinstance(bundle["config"], str):
        refuse(where, "bundle.config", bundle["config"], "YAML text", TrainingCheckpointError)
    audio = bundle["audio"]
    if not isinstance(audio, dict):
        raise TrainingCheckpointError(f"{where}: bundle.audio is not a table of settings")
    checks = [
        (f"bundle.{k}", bundle.get(k), spec, k in bundle) for k, spec in BUNDLE_FIELDS.items()
    ]
    checks += [
        (f"bundle.audio.{k}", audio.get(k), spec, k in audio) for k, spec in AUDIO_FIELDS.items()
    ]
    for field, value, (kind, low, high), present in checks:
        if present and not in_range(kind, value, low, high):
            refuse(where, field, value, describe(kind, low, high), TrainingCheckpointError)


def load_bundle(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Bundle:
    """Everything evaluation and inference need, from one training checkpoint, in eval mode.

    A voice checkpoint (``task=voice``) gives the voice encoder and the frozen decoder it was
    trained against; a decoder checkpoint gives the decoder alone.
    """
    payload = read_training_checkpoint(path, mmap=True)
    bundle = payload["bundle"]
    check_bundle(bundle, path)
    trained = build_model(payload, assign=True, source=path)
    if isinstance(trained, VOICE_ENCODERS):
        if "decoder" not in bundle:
            raise TrainingCheckpointError(f"{path}: a voice encoder without its face decoder")
        voice, decoder = trained, build_model(bundle["decoder"], True, path, "bundle.decoder")
    elif isinstance(trained, FaceDecoder):
        voice, decoder = None, trained
    else:
        raise TrainingCheckpointError(f"{path} holds a '{payload['kind']}', not a trained model")
    result = Bundle(
        voice_encoder=voice,
        face_decoder=decoder,
        face_encoder=str(bundle["face_encoder"]),
        feature_dim=int(bundle["feature_dim"]),
        audio=dict(bundle["audio"]),
        config=str(bundle["config"]),
        task=str(payload["training"]["task"]),
        step=int(payload["training"]["step"]),
        mean_feature=_mean_feature(bundle.get("mean_feature"), int(bundle["feature_dim"]), path),
        feature_radius=_radius(bundle.get("feature_radius"), path),
    ).to(map_location)
    if voice is not None:
        voice.eval()
    decoder.eval()
    return result

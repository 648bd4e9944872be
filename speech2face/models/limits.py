"""The ranges a checkpoint's settings must lie in before anything is built from them.

A checkpoint is read without running code (``weights_only=True``), but its settings still
decide what gets allocated: a voice window of 400 million samples tiles a 4 s voice into
25 minutes of audio (21 GB of spectrogram and activations). Every number a checkpoint holds
that sizes a tensor, a layer or a window is therefore checked against these bounds first,
and a value out of range, negative, or of the wrong type (text, a list) is refused in one
line naming the file and the field (:func:`check_model_config`, and
:func:`speech2face.training.checkpoint.check_bundle` for the bundle's own settings).

The bounds are generous around the paper's values, so that experiments fit, and tight
enough that no accepted value costs more than a few times the paper's model.
"""

from __future__ import annotations

import math
from typing import Any

from speech2face.audio import N_FREQ, SAMPLE_RATE
from speech2face.errors import S2FError

# --------------------------------------------------------------------------- audio

# The voice window (bundle.audio.clip_samples): inference tiles short audio to one window and
# the encoder holds ~40 MB of first-layer activations per 6 s (the paper's window). At least
# 1 s (speech2face.inference.MIN_SECONDS: the shortest sound drawn from); at most 30 s, five
# times the paper's window (~200 MB of activations), longer than any AVSpeech/VoxCeleb segment
# the shards hold (3-10 s).
MIN_CLIP_SAMPLES = SAMPLE_RATE  # 16,000: 1 s
MAX_CLIP_SAMPLES = 30 * SAMPLE_RATE  # 480,000: 30 s
# STFT settings recorded beside the window. Inference refuses any that differ from
# speech2face.audio's; these bounds only keep the refusal from reading nonsense first.
MAX_SAMPLE_RATE = 384_000  # Hz: speech2face.audio.MAX_SAMPLE_RATE, the highest rate read
MAX_FFT = 8192  # samples: 16x the paper's 512-point FFT (0.5 s at 16 kHz)

# --------------------------------------------------------------------------- layer widths

# Feature widths (bundle.feature_dim, out_dim, the decoder's feature_dim) and fully connected
# widths (hidden_dim, embed_dim, landmark_hidden): 4x the widest the paper uses (VGG-Face
# fc7 and the voice encoder's fc8, 4,096). A 16,384 x 29,184 layer is already 1.9 GB.
MAX_WIDTH = 16_384
# Convolution channels (the voice encoder's channels, the decoder's texture_channels and
# min_channels): 4x the paper's widest (512). The first convolution's activations grow with
# its channels: 2,048 there would hold 1.2 GB per 6 s window instead of 40 MB.
MAX_CHANNELS = 2_048
# Spectrogram input channels: the paper's real and imaginary parts (2); a few more for
# experiments (magnitude, phase, deltas).
MAX_IN_CHANNELS = 8
# Layers listed per entry (the voice encoder's convolutions, the landmark MLP): the paper's
# encoder has 9 convolutions; 64 is far beyond any model that trains on this data.
MAX_LAYERS = 64
# Square kernels and strides: the paper's are 4x4 and 1 or 2; 16 and 8 allow any sane
# variant (and a kernel larger than the 257 frequency bins leaves no output anyway).
MAX_KERNEL = 16
MAX_STRIDE = 8
# Frequency bins the encoder takes: at most the spectrogram's (257).
MAX_FREQ = N_FREQ
# The decoder's portrait side: 224 in the paper; up to 1,024 (21x the pixels; s2f-infer
# resizes further on request). Its texture starts at texture_base (14 in the paper).
MAX_IMAGE_SIZE = 1_024
MAX_TEXTURE_BASE = MAX_IMAGE_SIZE
# Landmarks the decoder places: dlib's 68; up to 1,000 (dense face meshes have ~470).
MAX_LANDMARKS = 1_000
# Fixed thin-plate spline points per border side: 3 in the paper (corners and midpoints).
MAX_BORDER_POINTS = 64
# GE2E partial windows: 160 frames (1.6 s) in Resemblyzer; up to MAX_CLIP_SAMPLES' frames.
MAX_PARTIAL_FRAMES = MAX_CLIP_SAMPLES // 160  # 3,000 frames of 10 ms
MAX_PARTIAL_RATE = 100.0  # partial windows a second: one every frame (10 ms) at most
# Training-only noise on the unit GE2E embedding, per coordinate: 0.625 is noise ten times
# the 256-D embedding's length (the model refuses more, speaker_encoder.MAX_EMBEDDING_NOISE).
MAX_EMBEDDING_NOISE = 0.625

# --------------------------------------------------------------------------- the table

INT, INTS, FLOAT, OPTIONAL_FLOAT, BOOL = "int", "ints", "float", "float or null", "bool"
# A setting that is one of a few names: (CHOICE, names, None).
CHOICE = "choice"

# kind -> config field -> (type, lowest, highest). Fields a config may leave out take the
# model's defaults; a field not listed here is refused.
MODEL_FIELDS: dict[str, dict[str, tuple[str, Any, Any]]] = {
    "voice_encoder": {
        "out_dim": (INT, 1, MAX_WIDTH),
        "hidden_dim": (INT, 1, MAX_WIDTH),
        "in_channels": (INT, 1, MAX_IN_CHANNELS),
        "n_freq": (INT, 1, MAX_FREQ),
        "channels": (INTS, 1, MAX_CHANNELS),
        "strides": (INTS, 1, MAX_STRIDE),
        "pool_after": (INTS, 1, MAX_LAYERS),
        "kernel_size": (INT, 1, MAX_KERNEL),
    },
    "ge2e_voice_encoder": {
        "out_dim": (INT, 1, MAX_WIDTH),
        "hidden_dim": (INT, 1, MAX_WIDTH),
        "freeze_encoder": (BOOL, 0, 1),
        "partial_frames": (INT, 1, MAX_PARTIAL_FRAMES),
        "partial_rate": (FLOAT, 0.0, MAX_PARTIAL_RATE),
        "min_coverage": (FLOAT, 0.0, 1.0),
        "level_dbfs": (OPTIONAL_FLOAT, -200.0, 0.0),
        "embedding_noise": (FLOAT, 0.0, MAX_EMBEDDING_NOISE),
        "embedding_dropout": (FLOAT, 0.0, 1.0),
        "heads": (INT, 1, 16),  # speaker_encoder.MAX_HEADS
    },
    "face_decoder": {
        "feature_dim": (INT, 1, MAX_WIDTH),
        "embed_dim": (INT, 1, MAX_WIDTH),
        "num_landmarks": (INT, 1, MAX_LANDMARKS),
        "landmark_hidden": (INTS, 1, MAX_WIDTH),
        "image_size": (INT, 1, MAX_IMAGE_SIZE),
        "texture_base": (INT, 1, MAX_TEXTURE_BASE),
        "texture_channels": (INT, 1, MAX_CHANNELS),
        "min_channels": (INT, 1, MAX_CHANNELS),
        "border_per_side": (INT, 2, MAX_BORDER_POINTS),
        "upsample": (CHOICE, ("transposed", "resize"), None),
    },
}
# Lists of layers are at most this long (an empty one is refused by the models themselves).
LIST_FIELDS_MAX_LENGTH = MAX_LAYERS


def describe(kind: str, low: Any, high: Any) -> str:
    """How a field's allowed values read in a message."""
    if kind == BOOL:
        return "true or false"
    if kind == CHOICE:
        return "one of " + ", ".join(low)
    if kind == INT:
        return f"a whole number from {low:,} to {high:,}"
    if kind == INTS:
        return f"a list of up to {LIST_FIELDS_MAX_LENGTH} whole numbers from {low:,} to {high:,}"
    span = f"a number from {low:g} to {high:g}"
    return f"{span}, or null" if kind == OPTIONAL_FLOAT else span


def in_range(kind: str, value: Any, low: Any, high: Any) -> bool:
    """Whether ``value`` is of ``kind`` (bools are not numbers, text is not either) and lies
    in ``[low, high]``."""
    if kind == BOOL:
        return isinstance(value, bool)
    if kind == CHOICE:
        return isinstance(value, str) and value in low
    if kind == OPTIONAL_FLOAT and value is None:
        return True
    if kind == INTS:
        return (
            isinstance(value, (list, tuple))
            and len(value) <= LIST_FIELDS_MAX_LENGTH
            and all(in_range(INT, item, low, high) for item in value)
        )
    if isinstance(value, bool):
        return False
    if kind == INT:
        return isinstance(value, int) and low <= value <= high
    return isinstance(value, (int, float)) and math.isfinite(value) and low <= value <= high


def refuse(where: str, field: str, value: Any, expected: str, error: type[S2FError]) -> None:
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    raise error(f"{where}: {field} must be {expected}, not {shown}")


def check_model_config(
    entry: Any, where: str, field: str, error: type[S2FError], kinds: dict[str, Any]
) -> None:
    """Check a ``{"kind", "config", "state_dict"}`` entry's shape and, for the kinds in
    :data:`MODEL_FIELDS`, every config value against its range.

    Args:
        entry: the entry (a checkpoint's top level, or its bundle's ``decoder``).
        where: the file, for messages; field: the entry's name in it (``""`` at the top).
        error: the :class:`S2FError` subclass to raise.
        kinds: the model kinds this project knows (``MODEL_KINDS``).
    """
    prefix = f"{field}." if field else ""
    if not isinstance(entry, dict):
        raise error(f"{where}: {field or 'the checkpoint'} is not a model entry")
    for name in ("kind", "config", "state_dict"):
        if name not in entry:
            raise error(f"{where}: {prefix}{name} is missing")
    kind = entry["kind"]
    if not isinstance(kind, str) or kind not in kinds:
        shown = repr(kind) if len(repr(kind)) <= 40 else repr(kind)[:37] + "..."
        raise error(f"{where}: {prefix}kind is an unknown model kind {shown}")
    config, state = entry["config"], entry["state_dict"]
    if not isinstance(config, dict):
        raise error(f"{where}: {prefix}config is not a table of settings")
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise error(f"{where}: {prefix}state_dict is not a table of named tensors")
    fields = MODEL_FIELDS.get(kind)
    if fields is None:
        return
    for name, value in config.items():
        if name not in fields:
            shown = repr(name) if len(repr(name)) <= 40 else repr(name)[:37] + "..."
            raise error(f"{where}: {prefix}config holds an unknown {kind} setting {shown}")
        expected, low, high = fields[name]
        if not in_range(expected, value, low, high):
            refuse(where, f"{prefix}config.{name}", value, describe(expected, low, high), error)

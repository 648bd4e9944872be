"""From a voice checkpoint and a recording to a portrait: the one path every caller takes.

``s2f-infer``, the demo, the evaluation gallery and any web page call this module::

    from speech2face.inference import Portraitist

    artist = Portraitist.from_checkpoint()  # $S2F_HOME/models/default.pt
    artist.portrait("voice.wav").save("voice.png")  # a PIL image, the decoder's size
    result = artist.predict((wav, 44_100))  # a (L,) waveform at any rate
    result.feature, result.portrait, result.windows, result.seconds

How a recording becomes one prediction:

1. It is read at 16 kHz mono (:func:`speech2face.audio.load_audio`: any format, rate or
   channel count); NaN or infinite samples are refused.
2. Silence is found as ``librosa.effects.split`` finds it (:func:`voiced_mask`), on the
   spectrogram's own frames (25 ms every 10 ms): a frame is silent when its RMS is more
   than :data:`SILENCE_TOP_DB` below the loudest frame's, or below
   :data:`SILENCE_FLOOR_DBFS` whatever the loudest is (a recording of nothing but hiss is
   silent too). Leading and trailing silence is cut; a recording with no sound at all is
   refused, and so is one whose sound lasts less than :data:`MIN_SECONDS` from its first to
   its last non-silent frame.
3. The rest is cut into windows of the checkpoint's training length
   (``bundle.audio["clip_samples"]``, 6 s for the paper's model) with a hop of half a
   window, the last one flush with the end (:func:`speech2face.windows.clip_windows`);
   audio shorter than one window is tiled to it as the paper does. Windows less than
   :data:`MIN_VOICED_FRACTION` non-silent are left out (when all are, the most voiced one is
   kept).
4. The windows run through the voice encoder as one batch (in batches of
   :data:`WINDOW_BATCH` for very long recordings); their raw outputs are averaged, placed by
   ``bundle.place`` (the projection of centred-cosine models) and drawn by the face decoder.

``fast=True`` runs the voice encoder in channels_last memory format, with bfloat16 autocast
where the hardware has bfloat16 arithmetic (:func:`bf16_supported`: AVX-512 BF16 or AMX on
x86 CPUs, Ampere or newer GPUs) and in float32 elsewhere (channels_last alone is still faster
than the default layout for the paper's encoder on AVX2 CPUs); the face decoder always runs
in float32. The predicted feature stays within cosine 0.999 of float32 (1.0000 without bf16).
Without bfloat16 the paper's encoder already runs near the float32 peak of an AVX2 CPU (about
120 GFLOP/s of its 178 GFLOP per 6 s window on two cores). Static int8 quantisation (fbgemm)
was measured at 2.2x on such a CPU, but it moved the demo model's features to cosine 0.991 of
float32 on voices outside its calibration set, too far to be a default, so it is not offered.

Loading is cheap: the checkpoint is mapped into memory rather than read, and the networks are
built on the meta device and take its tensors as their weights
(:func:`speech2face.training.checkpoint.load_bundle`), so a paper-size model (780 MB) is ready
in about 0.1 s and its pages are read as the first portrait uses them.

Heavy libraries (torch, PIL) are imported when first used, so importing this
module, and ``s2f-infer --help``, stays instant.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from speech2face.errors import S2FError
from speech2face.weights import DEFAULT_HOME, HOME_ENV

if TYPE_CHECKING:
    import torch
    from PIL import Image
    from torch import Tensor

    from speech2face.training.checkpoint import Bundle

__all__ = [
    "DEFAULT_GALLERY_NAME",
    "DEFAULT_NAME",
    "MIN_SECONDS",
    "MIN_VOICED_FRACTION",
    "MODELS_SUBDIR",
    "SILENCE_FLOOR_DBFS",
    "SILENCE_TOP_DB",
    "WINDOW_BATCH",
    "InferenceError",
    "Portraitist",
    "Prediction",
    "Windows",
    "bf16_supported",
    "default_checkpoint",
    "frame_rms",
    "install_default",
    "install_gallery",
    "installed_gallery",
    "load_voice_bundle",
    "missing_default_message",
    "models_home",
    "resolve_device",
    "voiced_mask",
]

MODELS_SUBDIR = "models"  # $S2F_HOME/models/ holds installed voice checkpoints
DEFAULT_NAME = "default.pt"  # the one s2f-infer uses without --checkpoint
# The absolute path of the evaluation whose held-out voices go with the default model (the
# demo's); s2f-serve shows them as example voices.
DEFAULT_GALLERY_NAME = "default-gallery.txt"

# Silence (librosa.effects.split's rule on 25 ms frames every 10 ms, the spectrogram's
# framing): a frame is silent when its RMS is more than SILENCE_TOP_DB below the loudest
# frame's. 40 dB keeps soft consonants and breathy endings of speech (20-30 dB under the
# vowels) and drops room noise between phrases (typically 40-60 dB under them).
SILENCE_TOP_DB = 40.0
# ... or below this RMS whatever the loudest frame is: -60 dBFS is an RMS of 0.001 (a full-scale
# sine is -3 dBFS), the hiss of a quiet room through a laptop microphone. Digital silence and
# a recording of nothing but such hiss are then refused instead of drawn from.
SILENCE_FLOOR_DBFS = -60.0
# A window counts when at least half of it is non-silent; windows that are mostly silence
# (pauses, a door closing in a long recording) are left out of the average.
MIN_VOICED_FRACTION = 0.5
# The shortest sound (first to last non-silent frame) drawn from, tiled to one window: under a
# second there are only four or five syllables, and the tiled clip becomes a buzz of one or
# two repeated sounds (speech2face.audio.MIN_VOICE_SECONDS).
MIN_SECONDS = 1.0
# Windows per forward pass: a recording of up to 99 s (32 windows of 6 s, hop 3 s) runs as one
# batch; longer ones in batches of this many (the paper's encoder holds ~40 MB of activations
# per 6 s window in its first layer).
WINDOW_BATCH = 32

_WAVEFORM = "<waveform>"  # how a waveform source is named in messages
_AMIN = 1e-5  # librosa's amplitude_to_db floor: quieter frames count as this loud


class InferenceError(S2FError, ValueError):
    """A recording or checkpoint that cannot give a portrait; the message is one line."""


# --------------------------------------------------------------------------- the default model


def models_home() -> Path:
    """``$S2F_HOME/models`` (default ``~/.cache/speech2face/models``)."""
    home = os.environ.get(HOME_ENV)
    return (Path(home) if home else DEFAULT_HOME).expanduser() / MODELS_SUBDIR


def default_checkpoint() -> Path:
    """Where ``s2f-infer`` looks without ``--checkpoint``: ``$S2F_HOME/models/default.pt``
    (the demo installs its model there with :func:`install_default`)."""
    return models_home() / DEFAULT_NAME


def missing_default_message(path: str | os.PathLike | None = None) -> str:
    """One line saying that no default model is installed, and how to get one."""
    path = Path(path) if path is not None else default_checkpoint()
    return (
        f"no model at {path} (the default checkpoint): run 'make demo' or 's2f-demo' to "
        "train and install one, or pass --checkpoint RUN_VOICE/checkpoints/last.pt "
        f"(or set {HOME_ENV} to a directory whose {MODELS_SUBDIR}/{DEFAULT_NAME} is one)"
    )


def install_default(checkpoint: str | os.PathLike) -> Path:
    """Copy a voice checkpoint to :func:`default_checkpoint`, atomically; returns that path.

    The checkpoint is loaded first (:func:`load_voice_bundle`), so a file that is not a
    voice checkpoint of this version never replaces a working default.
    """
    from speech2face.fileio import atomic_outputs, same_file

    source = Path(checkpoint)
    load_voice_bundle(source)
    target = default_checkpoint()
    if same_file(source, target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_outputs(target) as (tmp,):
        shutil.copyfile(source, tmp)
    return target


def install_gallery(evaluation: str | os.PathLike) -> Path:
    """Record an evaluation's output directory (its ``metrics.json`` gallery of held-out
    voices) as the default model's examples, in :func:`models_home` (``s2f-serve`` shows
    them wherever it starts); returns the record's path."""
    from speech2face.fileio import write_atomic

    record = models_home() / DEFAULT_GALLERY_NAME
    record.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(record, (str(Path(evaluation).resolve()) + "\n").encode())
    return record


def installed_gallery() -> Path | None:
    """The evaluation directory :func:`install_gallery` recorded, or ``None`` (none recorded,
    or the record is unreadable)."""
    try:
        text = (models_home() / DEFAULT_GALLERY_NAME).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return Path(text) if text else None


def load_voice_bundle(path: str | os.PathLike, device: str | torch.device = "cpu") -> Bundle:
    """The voice bundle of a training checkpoint, or a one-line :class:`S2FError` (missing,
    unreadable, another project's or version's, a decoder-only checkpoint, other audio
    settings)."""
    from speech2face.audio import HOP_LENGTH, N_FFT, POWER_LAW, SAMPLE_RATE, WIN_LENGTH
    from speech2face.training.checkpoint import load_bundle

    path = Path(path)
    if not path.exists():
        raise InferenceError(f"checkpoint {path} does not exist")
    if not path.is_file():
        raise InferenceError(f"checkpoint {path} is not a file")
    bundle = load_bundle(path, map_location=device)
    if bundle.voice_encoder is None:
        raise InferenceError(
            f"checkpoint {path} holds a face decoder alone ({bundle.task} task), not a voice "
            "encoder: pass a voice checkpoint (s2f-train task=voice ... output_dir=RUN_VOICE/, "
            "then RUN_VOICE/checkpoints/last.pt)"
        )
    ours = {
        "sample_rate": SAMPLE_RATE,
        "win_length": WIN_LENGTH,
        "hop_length": HOP_LENGTH,
        "n_fft": N_FFT,
        "power_law": POWER_LAW,
    }
    for key, value in ours.items():
        if key in bundle.audio and bundle.audio[key] != value:
            raise InferenceError(
                f"checkpoint {path} was trained on audio with {key}={bundle.audio[key]}; this "
                f"speech2face computes {key}={value}"
            )
    return bundle


# --------------------------------------------------------------------------- devices


def resolve_device(name: str | torch.device = "cpu") -> torch.device:
    """``cpu``, ``cuda`` (``cuda:N``) or ``auto`` (CUDA when there is one)."""
    import torch

    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise InferenceError(f"unknown device '{name}': use cpu, cuda or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InferenceError(f"device {name} asked for, but no CUDA device is available")
    if device.type not in ("cpu", "cuda"):
        raise InferenceError(f"device {name} is not supported: use cpu, cuda or auto")
    return device


def bf16_supported(device: str | torch.device = "cpu") -> bool:
    """Whether ``device`` has bfloat16 arithmetic, so autocast to it is faster, not emulated.

    CPUs: oneDNN is available and the processor has AVX-512 BF16 or AMX (oneDNN's own check,
    else ``/proc/cpuinfo``'s flags). GPUs: ``torch.cuda.is_bf16_supported()`` (Ampere on).
    """
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN's own check
        return bool({"avx512_bf16", "amx_bf16"} & _cpu_flags())


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


# --------------------------------------------------------------------------- predictions


@dataclass
class Prediction:
    """What one recording gives.

    Attributes:
        feature: ``(D,)`` float32 (CPU): the predicted face feature, the average of the
            windows' raw outputs placed by the checkpoint (``Bundle.place``).
        portrait: ``(3, S, S)`` uint8 (CPU): the face decoder's portrait of it (S = 224 for
            the paper's decoder).
        windows: how many windows were averaged.
        seconds: seconds of non-silent audio inside those windows.
    """

    feature: Tensor
    portrait: Tensor
    windows: int
    seconds: float

    def image(self) -> Image.Image:
        """The portrait as an RGB PIL image."""
        from PIL import Image

        return Image.fromarray(self.portrait.permute(1, 2, 0).contiguous().numpy(), "RGB")


@dataclass
class Windows:
    """The windows of one recording that are averaged (:meth:`Portraitist.windows`)."""

    clips: Tensor  # (W, N) float32 at 16 kHz, the windows kept
    seconds: float  # non-silent seconds inside them


class Portraitist:
    """A voice checkpoint ready to draw portraits.

    Args:
        bundle: a voice bundle (:func:`load_voice_bundle`); it is moved to ``device`` (and its
            voice encoder to channels_last when ``fast``) in place.
        device: ``cpu``, ``cuda`` or ``auto``.
        fast: channels_last, and bfloat16 autocast where the hardware has bfloat16
            (:func:`bf16_supported`); ``False``: float32 in the default layout.
    """

    def __init__(
        self, bundle: Bundle, device: str | torch.device = "cpu", fast: bool = True
    ) -> None:
        import torch

        if bundle.voice_encoder is None:
            raise InferenceError("this bundle holds no voice encoder")
        self.device = resolve_device(device)
        self.bundle = bundle.to(self.device)
        self.bf16 = bool(fast) and bf16_supported(self.device)
        self.channels_last = bool(fast)
        if self.channels_last:
            bundle.voice_encoder.to(memory_format=torch.channels_last)
        self.window_samples = int(bundle.audio.get("clip_samples", 0)) or _paper_samples()

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        fast: bool = True,
    ) -> Portraitist:
        """Load a voice checkpoint (default: :func:`default_checkpoint`)."""
        if path is None:
            path = default_checkpoint()
            if not path.is_file():
                raise InferenceError(missing_default_message(path))
        return cls(load_voice_bundle(path, resolve_device(device)), device, fast)

    @property
    def precision(self) -> str:
        """How the voice encoder runs: ``channels_last, bf16 autocast``, ``channels_last,
        fp32`` (fast, without bfloat16 hardware) or ``fp32``."""
        if self.bf16:
            return "channels_last, bf16 autocast"
        return "channels_last, fp32" if self.channels_last else "fp32"

    @property
    def image_size(self) -> int:
        """The portraits' side in pixels (the face decoder's)."""
        return int(self.bundle.face_decoder.config.image_size)

    def predict(self, source: str | os.PathLike | tuple[Any, int]) -> Prediction:
        """The prediction for a file (any format :func:`~speech2face.audio.load_audio`
        reads) or a ``(waveform (L,), sample_rate)`` pair."""
        name, wav = _read(source)
        return self.predict_windows(self.windows(wav, name))

    def predict_windows(self, windows: Windows) -> Prediction:
        """The prediction for the windows :meth:`windows` kept (for a caller that also
        shows them, without finding them twice)."""
        import torch

        from speech2face.images import to_uint8

        raw = self.raw_outputs(windows.clips)  # (W, D)
        with torch.no_grad():
            feature = self.bundle.place(raw.mean(dim=0, keepdim=True))  # (1, D)
            image = self.bundle.portrait(feature)  # (1, 3, S, S) in [0, 1]
        return Prediction(
            feature=feature[0].float().cpu(),
            portrait=to_uint8(image)[0],
            windows=int(windows.clips.shape[0]),
            seconds=windows.seconds,
        )

    def portrait(self, source: str | os.PathLike | tuple[Any, int]) -> Image.Image:
        """The portrait of a file or a ``(waveform, sample_rate)`` pair, as a PIL image."""
        return self.predict(source).image()

    def windows(self, wav: Tensor, name: str = _WAVEFORM) -> Windows:
        """The windows of a 16 kHz ``(L,)`` waveform that are averaged (see the module's
        docstring), or a one-line :class:`InferenceError` naming ``name``."""
        import torch

        from speech2face.audio import SAMPLE_RATE
        from speech2face.windows import clip_windows

        voiced = voiced_mask(wav, name)  # (L,) bool
        where = torch.nonzero(voiced).flatten()
        first, last = int(where[0]), int(where[-1]) + 1
        if (last - first) / SAMPLE_RATE < MIN_SECONDS:
            raise InferenceError(
                f"{name}: only {(last - first) / SAMPLE_RATE:.2f} s of sound (silence at the ends "
                f"left out); at least {MIN_SECONDS:g} s is needed"
            )
        wav, voiced = wav[first:last], voiced[first:last]
        # Sample indices of each window (tiled when short), so the waveform and its mask of
        # voiced samples are cut alike.
        positions = clip_windows(torch.arange(wav.numel()), self.window_samples)  # (W, N)
        shares = voiced[positions].float().mean(dim=1)  # (W,)
        keep = shares >= MIN_VOICED_FRACTION
        if not bool(keep.any()):  # all mostly silent: the most voiced (the first of equals)
            keep = torch.zeros_like(keep)
            keep[int(torch.argmax(shares))] = True
        covered = torch.zeros_like(voiced)
        covered[positions[keep].flatten()] = True
        seconds = float((voiced & covered).sum()) / SAMPLE_RATE
        return Windows(clips=wav[positions[keep]], seconds=seconds)

    def raw_outputs(self, clips: Tensor) -> Tensor:  # (W, N) -> (W, D) float32
        """The voice encoder's raw outputs for 16 kHz windows, in batches of
        :data:`WINDOW_BATCH`, in this portraitist's precision."""
        import torch

        from speech2face.audio import spectrogram

        outputs = []
        encoder = self.bundle.voice_encoder
        for start in range(0, clips.shape[0], WINDOW_BATCH):
            batch = clips[start : start + WINDOW_BATCH].to(self.device)
            spec = spectrogram(batch)  # (B, 2, T, 257)
            if self.channels_last:
                spec = spec.contiguous(memory_format=torch.channels_last)
            with torch.no_grad(), self._autocast():
                outputs.append(encoder(spec).float())
        return torch.cat(outputs)

    @contextlib.contextmanager
    def _autocast(self) -> Iterator[None]:
        import torch

        if not self.bf16:
            yield
            return
        with torch.autocast(self.device.type, dtype=torch.bfloat16):
            yield


def _paper_samples() -> int:
    from speech2face.audio import N_SAMPLES

    return N_SAMPLES


def frame_rms(wav: Tensor) -> Tensor:  # (L,) -> (F,) float64, F = L // HOP_LENGTH + 1
    """RMS of each 25 ms frame every 10 ms (the spectrogram's framing), frames centred on
    their hop with zeros beyond the ends: ``librosa.feature.rms``'s framing."""
    import torch.nn.functional as F

    from speech2face.audio import HOP_LENGTH, WIN_LENGTH

    half = WIN_LENGTH // 2
    padded = F.pad(wav.double()[None], (half, half))[0]  # (L + WIN_LENGTH,)
    frames = padded.unfold(0, WIN_LENGTH, HOP_LENGTH)  # (F, WIN_LENGTH)
    return frames.pow(2).mean(dim=1).sqrt()


def voiced_mask(wav: Tensor, name: str = _WAVEFORM) -> Tensor:  # (L,) -> (L,) bool
    """Which samples of a 16 kHz waveform lie in non-silent stretches; a waveform with none
    is refused.

    This is ``librosa.effects.split(wav, top_db=SILENCE_TOP_DB, ref=R, frame_length=
    WIN_LENGTH, hop_length=HOP_LENGTH)`` with ``R`` the louder of the loudest frame's RMS and
    :data:`SILENCE_FLOOR_DBFS` + :data:`SILENCE_TOP_DB` (so a frame is silent when it is more
    than ``top_db`` under the loudest one, or under the floor), computed here in a few tensor
    operations: importing ``librosa.effects`` alone (SciPy's signal module, scikit-learn)
    costs more than the rest of a portrait. The tests compare the two on many signals.
    """
    import torch

    from speech2face.audio import HOP_LENGTH

    rms = frame_rms(wav)  # (F,)
    floor = 10.0 ** ((SILENCE_FLOOR_DBFS + SILENCE_TOP_DB) / 20.0)
    reference = max(float(rms.max()), floor)
    # librosa's amplitude_to_db: 20 log10 of each, both clipped below at AMIN
    loud = 20.0 * torch.log10(rms.clamp_min(_AMIN)) - 20.0 * math.log10(max(reference, _AMIN))
    frames = loud > -SILENCE_TOP_DB  # (F,)
    if not bool(frames.any()):
        raise InferenceError(
            f"{name}: silent (no sound above {SILENCE_FLOOR_DBFS:g} dBFS): nothing to draw from"
        )
    # Sample s belongs to frame s // HOP_LENGTH, as in librosa's frames_to_samples of the
    # interval edges.
    return frames.repeat_interleave(HOP_LENGTH)[: wav.numel()]


def _read(source: str | os.PathLike | tuple[Any, int]) -> tuple[str, Tensor]:
    """``(name for messages, (L,) float32 16 kHz waveform)`` of a path or a
    ``(waveform, sample_rate)`` pair."""
    import torch

    from speech2face.audio import (
        MAX_SAMPLE_RATE,
        MIN_SAMPLE_RATE,
        SAMPLE_RATE,
        load_audio,
        resample,
    )

    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source), load_audio(source, SAMPLE_RATE)
    if not (isinstance(source, tuple) and len(source) == 2):
        raise InferenceError(
            f"a source is a file path or a (waveform, sample_rate) pair, not {type(source).__name__}"
        )
    wav, rate = source
    wav = torch.as_tensor(wav).detach().cpu()
    if wav.ndim != 1:
        raise InferenceError(f"{_WAVEFORM}: a waveform is (L,), got shape {tuple(wav.shape)}")
    if not wav.is_floating_point():
        raise InferenceError(f"{_WAVEFORM}: samples must be floats in [-1, 1], got {wav.dtype}")
    whole = not isinstance(rate, bool) and int(rate) == rate
    if not (whole and MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE):
        bounds = f"an integer from {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz"
        raise InferenceError(f"{_WAVEFORM}: the sample rate must be {bounds}: {rate}")
    if wav.numel() == 0:
        raise InferenceError(f"{_WAVEFORM}: contains no audio samples")
    if not bool(torch.isfinite(wav).all()):
        raise InferenceError(f"{_WAVEFORM}: contains NaN or infinite samples")
    wav = resample(wav.float(), int(rate), SAMPLE_RATE)
    return _WAVEFORM, wav.clamp(-1.0, 1.0).contiguous()

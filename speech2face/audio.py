"""The Speech2Face audio front end: load, resample, tile/cut, complex spectrogram.

Every constant below is the paper's (Oh et al., CVPR 2019, Sec. 3.2): 16 kHz mono audio,
6 s clips, 25 ms periodic Hann frames every 10 ms, 512-point FFT, and power-law
compression of the real and imaginary parts separately.

Framing follows TensorFlow's ``tf.signal.stft``: each frame is WIN_LENGTH samples long and
is zero-padded at its end to N_FFT before the FFT. ``torch.stft(n_fft=512,
win_length=400, center=False)`` would instead frame with 512 samples (597 frames) and
centre the window inside them (another phase), so it is deliberately not used here.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from speech2face.errors import AudioError

SAMPLE_RATE = 16_000  # Hz
CLIP_SECONDS = 6
N_SAMPLES = SAMPLE_RATE * CLIP_SECONDS  # 96,000 samples per training clip
WIN_LENGTH = 400  # 25 ms at 16 kHz
HOP_LENGTH = 160  # 10 ms at 16 kHz
N_FFT = 512  # each 400-sample frame is zero-padded to 512
N_FREQ = N_FFT // 2 + 1  # 257 one-sided frequency bins
N_FRAMES = 1 + (N_SAMPLES - WIN_LENGTH) // HOP_LENGTH  # 1 + 95,600 // 160 = 598
POWER_LAW = 0.3  # sign(x) * |x| ** 0.3 on real and imaginary parts

# Containers that soundfile (libsndfile) reads; everything else goes through PyAV.
_SOUNDFILE_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".au"}

__all__ = [
    "CLIP_SECONDS",
    "HOP_LENGTH",
    "N_FFT",
    "N_FRAMES",
    "N_FREQ",
    "N_SAMPLES",
    "POWER_LAW",
    "SAMPLE_RATE",
    "WIN_LENGTH",
    "AudioError",
    "fit_to_length",
    "load_audio",
    "num_frames",
    "resample",
    "spectrogram",
]


def num_frames(num_samples: int) -> int:
    """Number of spectrogram frames for ``num_samples`` samples (598 for 6 s at 16 kHz)."""
    if num_samples < WIN_LENGTH:
        raise ValueError(f"need at least {WIN_LENGTH} samples for one frame, got {num_samples}")
    return 1 + (num_samples - WIN_LENGTH) // HOP_LENGTH


# --------------------------------------------------------------------------- loading


def load_audio(
    path: str | os.PathLike,
    sample_rate: int = SAMPLE_RATE,
    max_seconds: float | None = None,
    offset_seconds: float = 0.0,
) -> torch.Tensor:
    """Read an audio file (or a video's audio track) as mono float32 at ``sample_rate``.

    Args:
        path: wav (8/16/24/32-bit int or float), flac, ogg, mp3 via soundfile; the audio
            track of mp4/m4a/mov/webm/mkv (or anything else FFmpeg reads) via PyAV.
        sample_rate: output rate in Hz; other rates are resampled with a band-limited
            (windowed-sinc) resampler.
        max_seconds: read at most this much audio after ``offset_seconds``; only that part
            of the file is decoded.
        offset_seconds: where to start reading, in seconds from the start of the file.

    Returns:
        Tensor of shape ``(T,)``, float32 in [-1, 1]; channels are averaged.

    Raises:
        AudioError: with a one-line message naming the file, for any unreadable input.
    """
    path = Path(path)
    if max_seconds is not None and not (math.isfinite(max_seconds) and max_seconds > 0):
        raise AudioError(f"{path}: max_seconds must be a positive number, got {max_seconds}")
    if not (math.isfinite(offset_seconds) and offset_seconds >= 0):
        raise AudioError(f"{path}: offset_seconds must be a number >= 0, got {offset_seconds}")
    if int(sample_rate) != sample_rate or sample_rate <= 0:
        raise AudioError(f"{path}: sample_rate must be a positive integer, got {sample_rate}")
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if not path.is_file():
        raise AudioError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: file is empty")

    if path.suffix.lower() in _SOUNDFILE_SUFFIXES:
        try:
            data, native_rate = _read_soundfile(path, max_seconds, offset_seconds)
        except AudioError:
            raise
        except Exception as sf_error:  # libsndfile could not parse it: let FFmpeg try
            try:
                data, native_rate = _read_pyav(path, max_seconds, offset_seconds)
            except AudioError:
                message = f"{path}: not a readable audio file ({_one_line(sf_error)})"
                raise AudioError(message) from sf_error
    else:
        data, native_rate = _read_pyav(path, max_seconds, offset_seconds)

    if data.size == 0:
        raise AudioError(f"{path}: contains no audio samples")
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: contains NaN or infinite samples")
    wav = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))
    if native_rate != sample_rate:
        wav = resample(wav, native_rate, sample_rate)
    if max_seconds is not None:
        wav = wav[: int(round(max_seconds * sample_rate))]
    return wav.clamp_(-1.0, 1.0)


def resample(wav: torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    """Band-limited resampling. ``wav``: ``(..., T)`` -> ``(..., T * new_rate / orig_rate)``."""
    import torchaudio.functional as AF

    if orig_rate == new_rate:
        return wav
    return AF.resample(wav, int(orig_rate), int(new_rate))


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__


def _read_soundfile(
    path: Path, max_seconds: float | None, offset_seconds: float
) -> tuple[np.ndarray, int]:
    """Decode with libsndfile; only the requested frames are read. Returns ``((T,), rate)``."""
    import soundfile as sf

    with sf.SoundFile(str(path)) as f:
        rate = f.samplerate
        start = int(round(offset_seconds * rate))
        frames = -1 if max_seconds is None else int(math.ceil(max_seconds * rate)) + 1
        if f.seekable() and start > 0:
            if start >= f.frames:
                raise AudioError(f"{path}: offset {offset_seconds}s is past the end of the audio")
            f.seek(start)
        elif start > 0:
            f.read(start, dtype="float32", always_2d=True)
        data = f.read(frames, dtype="float32", always_2d=True)  # (T, C)
    return _downmix(data), rate


def _downmix(data: np.ndarray) -> np.ndarray:
    """Average channels: ``(T, C) -> (T,)`` (a matrix-vector product, faster than mean)."""
    if data.shape[1] == 1:
        return data[:, 0]
    return data @ np.full(data.shape[1], 1.0 / data.shape[1], dtype=data.dtype)


def _read_pyav(
    path: Path, max_seconds: float | None, offset_seconds: float
) -> tuple[np.ndarray, int]:
    """Decode the first audio stream with PyAV, stopping once enough samples are in."""
    import av

    try:
        container = av.open(str(path), metadata_errors="ignore")
    except Exception as error:
        message = f"{path}: not a readable audio or video file ({_one_line(error)})"
        raise AudioError(message) from error
    try:
        if not container.streams.audio:
            raise AudioError(f"{path}: has no audio stream")
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate or stream.rate
        if not rate:
            raise AudioError(f"{path}: audio stream has no sample rate")
        if offset_seconds > 0:
            container.seek(int(offset_seconds / stream.time_base), stream=stream, backward=True)
        skip_to = offset_seconds
        wanted = None if max_seconds is None else int(math.ceil(max_seconds * rate)) + 1
        # Normalise every frame to planar float32 at the stream's own rate and layout.
        to_float = av.AudioResampler(format="fltp", rate=rate)
        chunks: list[np.ndarray] = []
        have = 0
        try:
            for frame in container.decode(stream):
                frame_start = float(frame.pts * frame.time_base) if frame.pts is not None else None
                for out in to_float.resample(frame):
                    block = out.to_ndarray().mean(axis=0)  # (C, n) -> (n,)
                    if frame_start is not None and frame_start < skip_to:
                        drop = int(round((skip_to - frame_start) * rate))
                        block = block[drop:]
                    if block.size:
                        chunks.append(block)
                        have += block.size
                if wanted is not None and have >= wanted:
                    break
        except AudioError:
            raise
        except Exception as error:
            if not chunks:
                message = f"{path}: could not decode audio ({_one_line(error)})"
                raise AudioError(message) from error
            # A damaged tail: keep what decoded cleanly before it.
    finally:
        container.close()
    data = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    if wanted is not None:
        data = data[:wanted]
    return data, int(rate)


# --------------------------------------------------------------------------- clips


def fit_to_length(wav: torch.Tensor, num_samples: int = N_SAMPLES) -> torch.Tensor:
    """The paper's clip rule: keep the first ``num_samples``; tile a shorter clip first.

    ``wav``: ``(..., T)`` with ``T > 0`` -> ``(..., num_samples)``. A 3 s clip becomes
    ``[clip, clip]``; a 2.5 s clip becomes ``[clip, clip, first 1 s of clip]``.
    """
    length = wav.shape[-1]
    if length == 0:
        raise AudioError("cannot fit an empty waveform to a clip length")
    if num_samples <= 0:
        raise ValueError(f"num_samples must be positive, got {num_samples}")
    if length < num_samples:
        repeats = math.ceil(num_samples / length)
        wav = wav.repeat(*([1] * (wav.dim() - 1)), repeats)
    return wav[..., :num_samples]


# --------------------------------------------------------------------------- spectrogram

_WINDOWS: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}


def _hann(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    key = (device, dtype)
    if key not in _WINDOWS:
        # periodic=True: w[n] = 0.5 - 0.5 cos(2 pi n / N), as tf.signal.hann_window.
        _WINDOWS[key] = torch.hann_window(WIN_LENGTH, periodic=True, device=device, dtype=dtype)
    return _WINDOWS[key]


def spectrogram(wav: torch.Tensor) -> torch.Tensor:
    """Power-law compressed complex STFT, the voice encoder's input.

    ``wav``: ``(..., T)`` float with ``T >= 400`` (96,000 for a 6 s clip) on any device.
    Returns ``(..., 2, F, 257)`` float32 with ``F = 1 + (T - 400) // 160`` (598 for 6 s):
    channel 0 is ``sign(re) |re| ** 0.3``, channel 1 the same for the imaginary part.
    """
    if wav.shape[-1] < WIN_LENGTH:
        raise ValueError(f"need at least {WIN_LENGTH} samples, got {wav.shape[-1]}")
    if not wav.is_floating_point() or wav.dtype in (torch.float16, torch.bfloat16):
        wav = wav.float()
    frames = wav.unfold(-1, WIN_LENGTH, HOP_LENGTH)  # (..., F, 400), a view
    frames = frames * _hann(wav.device, wav.dtype)
    spec = torch.fft.rfft(frames, n=N_FFT, dim=-1)  # (..., F, 257) complex
    parts = torch.stack((spec.real, spec.imag), dim=-3)  # (..., 2, F, 257)
    # sign(x) |x|^0.3, written as copysign to save a pass over the largest tensor.
    return parts.abs().pow_(POWER_LAW).copysign_(parts).float()

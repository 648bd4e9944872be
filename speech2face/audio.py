"""The Speech2Face audio front end: load, resample, tile/cut, complex spectrogram.

Every constant below is the paper's (Oh et al., CVPR 2019, Sec. 3.2): 16 kHz mono audio,
6 s clips, 25 ms periodic Hann frames every 10 ms, 512-point FFT, and power-law
compression of the real and imaginary parts separately.

Framing follows TensorFlow's ``tf.signal.stft``: each frame is WIN_LENGTH samples long and
is zero-padded at its end to N_FFT before the FFT. ``torch.stft(n_fft=512,
win_length=400, center=False)`` would instead frame with 512 samples (597 frames) and
centre the window inside them (another phase), so it is deliberately not used here.

The resampler lives in :mod:`speech2face.resample` and the file decoders in
:mod:`speech2face.audio_io`; their public names are re-exported here.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from speech2face.audio_io import (
    SEEK_PREROLL_SAMPLES,
    SEEK_PREROLL_SECONDS,
    SOUNDFILE_SUFFIXES,
    Cut,
    NotMedia,
    one_line,
    read_pyav,
    read_soundfile,
    soundfile_reads,
)
from speech2face.errors import AudioError, ShortAudioWarning
from speech2face.resample import (
    RESAMPLE_BANK_LIMIT,
    RESAMPLE_ROLLOFF,
    RESAMPLE_ZERO_CROSSINGS,
    _bank_size,  # noqa: F401 (reached as speech2face.audio._bank_size)
    _resample_by_phase,  # noqa: F401 (reached as speech2face.audio._resample_by_phase)
    filter_margin,
    resample,
)

SAMPLE_RATE = 16_000  # Hz
CLIP_SECONDS = 6
N_SAMPLES = SAMPLE_RATE * CLIP_SECONDS  # 96,000 samples per training clip
WIN_LENGTH = 400  # 25 ms at 16 kHz
HOP_LENGTH = 160  # 10 ms at 16 kHz
N_FFT = 512  # each 400-sample frame is zero-padded to 512
N_FREQ = N_FFT // 2 + 1  # 257 one-sided frequency bins
N_FRAMES = 1 + (N_SAMPLES - WIN_LENGTH) // HOP_LENGTH  # 1 + 95,600 // 160 = 598
POWER_LAW = 0.3  # sign(x) * |x| ** 0.3 on real and imaginary parts
# fit_to_length warns (ShortAudioWarning) when it tiles less than this: a second holds four or
# five syllables of speech; tiled to 6 s, less becomes a buzz of one or two repeated sounds,
# unlike the paper's 3-10 s AVSpeech segments the voice encoder learns from.
MIN_VOICE_SECONDS = 1.0

# The file rates load_audio reads (in Hz; others are refused in one line before any decoding).
# Under 1 kHz a recording keeps nothing of a voice above 500 Hz, where its formants are, and
# each native sample becomes 16 or more at 16 kHz; 384 kHz is the highest rate audio hardware
# and formats use (DXD's 352.8 kHz, 384 kHz converters), and the filter's half-width grows
# with the rate (146 native samples at 384 kHz). Within these bounds resampling holds at most
# about 6 million weights (4.7 million from 383,999 Hz to 16 kHz: 16,000 phases x 293 taps).
MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 384_000

__all__ = [
    "CLIP_SECONDS",
    "HOP_LENGTH",
    "MAX_SAMPLE_RATE",
    "MIN_SAMPLE_RATE",
    "MIN_VOICE_SECONDS",
    "N_FFT",
    "N_FRAMES",
    "N_FREQ",
    "N_SAMPLES",
    "POWER_LAW",
    "RESAMPLE_BANK_LIMIT",
    "RESAMPLE_ROLLOFF",
    "RESAMPLE_ZERO_CROSSINGS",
    "SAMPLE_RATE",
    "SEEK_PREROLL_SAMPLES",
    "SEEK_PREROLL_SECONDS",
    "WIN_LENGTH",
    "AudioError",
    "ShortAudioWarning",
    "fit_to_length",
    "load_audio",
    "num_frames",
    "one_line_warnings",
    "resample",
    "resample_margin",
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

    A cut is the same samples as the whole file read and resampled, then cut:
    ``load_audio(p, sr, max_seconds=s, offset_seconds=o)`` equals
    ``load_audio(p, sr)[j : j + round(s * sr)]`` with ``j = round(o * sr)`` (to float32
    round-off). The offset is rounded on the output grid, not the file's: output sample ``j``
    lies at native position ``j * native_rate / sr``, in general between two native samples
    (``o * native_rate`` need not be whole). Only the native samples the resampler needs are
    decoded: from a whole period before that position (a multiple of ``native_rate / g``
    native samples, which resample to ``sr / g`` output samples on the whole file's grid,
    ``g = gcd(native_rate, sr)``: 441 -> 160 for 44.1 kHz to 16 kHz, at most a second:
    48,001 -> 16,000 for 48,001 Hz) with at least
    :func:`resample_margin` samples to spare, or from the file's start, to
    :func:`resample_margin` samples past the last kept one, or the file's end; the resampled
    read is then trimmed to the cut. The file's ends are zero-padded in both reads alike.
    Containers with timestamps coarser than a sample (Matroska/WebM count milliseconds) place
    a seek exactly where the codec's packets fall on a grid wider than that (Opus, AAC, mp3),
    otherwise (Vorbis, FLAC) only to their nearest timestamp.

    Sample 0 is the signal's first sample wherever the file says where that is: the encoder's
    priming is dropped as an mp3's LAME/Xing/Info header, an mp4/m4a/mov edit list, a
    Matroska/WebM track's CodecDelay or an Ogg stream's granule positions state it, and Opus's
    pre-skip as its OpusHead header does (for Opus below 48 kHz FFmpeg 5.1 wrote a shorter
    CodecDelay, which FFmpeg's own decode follows: 69 samples late at 16 kHz). An mp3 without
    a gapless header (sox writes none) says nothing, and keeps LAME's encoder and decoder
    delay: 1,105 of its own samples (69 ms at 16 kHz, 25 ms at 44.1 kHz). Samples timed
    before 0 are dropped; a track that starts after 0 on its container's clock starts at
    sample 0 (it is not padded), and offsets count from there.

    Args:
        path: wav (8/16/24/32-bit int or float), flac, ogg, mp3 via soundfile; the audio
            track of mp4/m4a/mov/webm/mkv (or anything else FFmpeg reads) via PyAV.
        sample_rate: output rate in Hz; other rates are resampled with a band-limited
            (windowed-sinc) resampler, :func:`resample`. Files (and ``sample_rate``) must be
            within :data:`MIN_SAMPLE_RATE` to :data:`MAX_SAMPLE_RATE` (1 to 384 kHz).
        max_seconds: keep at most ``round(max_seconds * sample_rate)`` samples after the
            offset; only that part of the file (plus the resampler's margin) is decoded.
        offset_seconds: where to start, in seconds from sample 0.

    Returns:
        Tensor of shape ``(T,)``, float32 in [-1, 1]; channels are averaged.

    Raises:
        AudioError: with a one-line message naming the file, for any unreadable input (a
            file whose contents are in no format libsndfile or FFmpeg reads: "not an audio
            file"; a rate outside the range above, before any sample is decoded). Decoders'
            notes on the C-level stderr (libmpg123's) are not shown.
    """
    path = Path(path)
    if max_seconds is not None and not (math.isfinite(max_seconds) and max_seconds > 0):
        raise AudioError(f"{path}: max_seconds must be a positive number, got {max_seconds}")
    if not (math.isfinite(offset_seconds) and offset_seconds >= 0):
        raise AudioError(f"{path}: offset_seconds must be a number >= 0, got {offset_seconds}")
    if int(sample_rate) != sample_rate or not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        message = f"sample_rate must be an integer from {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE}"
        raise AudioError(f"{path}: {message} Hz, got {sample_rate}")
    sample_rate = int(sample_rate)
    if max_seconds is not None and round(max_seconds * sample_rate) == 0:
        message = f"max_seconds={max_seconds} is less than one sample at {sample_rate} Hz"
        raise AudioError(f"{path}: {message}")
    if not path.exists():
        if path.is_symlink():
            raise AudioError(f"{path}: a symbolic link to nothing (a loop, or a missing target)")
        raise AudioError(f"{path}: no such file")
    if not path.is_file():
        raise AudioError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: file is empty")

    def plan(native_rate: int) -> Cut:  # called once the rate is known, before decoding
        if not MIN_SAMPLE_RATE <= native_rate <= MAX_SAMPLE_RATE:
            bounds = f"{MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz"
            raise AudioError(f"{path}: sample rate {native_rate} Hz is outside {bounds}")
        return _plan_cut(native_rate, sample_rate, max_seconds, offset_seconds)

    if path.suffix.lower() in SOUNDFILE_SUFFIXES and soundfile_reads(path):
        try:
            data, native_rate = read_soundfile(path, plan)
        except AudioError:
            raise
        except Exception as sf_error:  # libsndfile could not parse it: let FFmpeg try
            try:
                data, native_rate = read_pyav(path, plan)
            except AudioError:
                message = f"{path}: not a readable audio file ({one_line(sf_error)})"
                raise AudioError(message) from sf_error
    elif path.suffix.lower() in SOUNDFILE_SUFFIXES:  # not what its name says: ask FFmpeg
        try:
            data, native_rate = read_pyav(path, plan)
        except NotMedia as error:
            message = f"{path}: not an audio file (its contents are in no format libsndfile or"
            raise AudioError(f"{message} FFmpeg reads)") from error
    else:
        data, native_rate = read_pyav(path, plan)

    if not np.isfinite(data).all():
        raise AudioError(f"{path}: contains NaN or infinite samples")
    cut = plan(native_rate)
    wav = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))  # (T_native,)
    if wav.numel():
        wav = resample(wav, native_rate, sample_rate)[cut.skip : cut.stop]  # (T,)
    if wav.numel() == 0:
        if offset_seconds > 0:
            raise AudioError(f"{path}: offset {offset_seconds}s is past the end of the audio")
        raise AudioError(f"{path}: contains no audio samples")
    return wav.clamp_(-1.0, 1.0)


def resample_margin(native_rate: int, sample_rate: int = SAMPLE_RATE) -> int:
    """Native samples on each side of an output sample's position that :func:`resample`
    weighs: ``ceil(6 * native_rate / (0.99 * min(native_rate, sample_rate)))`` (17 for
    44.1 kHz to 16 kHz, 19 for 48 kHz, 9 for 22.05 kHz, 7 for 8 kHz), 0 for equal rates."""
    return filter_margin(native_rate, sample_rate)


def _plan_cut(
    native_rate: int, sample_rate: int, max_seconds: float | None, offset_seconds: float
) -> Cut:
    """Which native samples give output samples ``[round(offset * sr), + round(max * sr))``
    exactly as resampling the whole file would (see :func:`load_audio`)."""
    first = int(round(offset_seconds * sample_rate))  # the cut's first output sample
    length = None if max_seconds is None else int(round(max_seconds * sample_rate))
    if native_rate == sample_rate:
        return Cut(first, length, 0, length)
    g = math.gcd(native_rate, sample_rate)
    down, up = native_rate // g, sample_rate // g  # one period: `down` native, `up` output
    margin = resample_margin(native_rate, sample_rate)
    # Output sample j lies at native position j * down / up. A read that starts at native
    # sample k * down makes its output sample 0 the whole file's output sample k * up, with
    # the same filter phases; take the last such k at least `margin` native samples before
    # the cut's first position (or the file's start, zero-padded in both reads alike).
    period = max(0, (first * down - margin * up) // (down * up))
    skip = first - period * up
    if length is None:
        return Cut(period * down, None, skip, None)
    last = (first + length - 1) * down // up  # native sample at or before the last position
    return Cut(period * down, last + margin + 1 - period * down, skip, length)


# --------------------------------------------------------------------------- clips


def fit_to_length(wav: torch.Tensor, num_samples: int = N_SAMPLES) -> torch.Tensor:
    """The paper's clip rule: keep the first ``num_samples``; tile a shorter clip first.

    ``wav``: ``(..., T)`` with ``T > 0`` at :data:`SAMPLE_RATE` -> ``(..., num_samples)``. A 3 s
    clip becomes ``[clip, clip]``; a 2.5 s clip becomes ``[clip, clip, first 1 s of clip]``.
    Tiling less than :data:`MIN_VOICE_SECONDS` warns with :class:`ShortAudioWarning` (a 44 ms
    clip would become 137 copies of itself); the result is returned all the same.
    """
    length = wav.shape[-1]
    if length == 0:
        raise AudioError("cannot fit an empty waveform to a clip length")
    if num_samples <= 0:
        raise ValueError(f"num_samples must be positive, got {num_samples}")
    if length < num_samples and length < MIN_VOICE_SECONDS * SAMPLE_RATE:
        message = (
            f"only {1000 * length / SAMPLE_RATE:.0f} ms of audio, tiled to"
            f" {num_samples / SAMPLE_RATE:g} s; under {MIN_VOICE_SECONDS:g} s there is too little"
            " voice for a clip"
        )
        warnings.warn(message, ShortAudioWarning, stacklevel=2)
    if length < num_samples:
        repeats = math.ceil(num_samples / length)
        wav = wav.repeat(*([1] * (wav.dim() - 1)), repeats)
    return wav[..., :num_samples]


@contextlib.contextmanager
def one_line_warnings(
    prog: str, categories: tuple[type[Warning], ...] = (ShortAudioWarning,)
) -> Iterator[None]:
    """Show ``categories`` of warnings raised inside as ``<prog>: warning: <message>``, one
    line on stderr, instead of Python's two lines (file, line number, source). Other warnings
    keep the usual format; everything is restored on exit. For commands::

        with one_line_warnings("s2f-spectrogram"):
            spec = spectrogram_of_file(path)
    """
    with warnings.catch_warnings():
        default = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if not issubclass(category, categories):
                return default(message, category, filename, lineno, file, line)
            text = " ".join(str(message).split())
            print(f"{prog}: warning: {text}", file=file or sys.stderr)

        warnings.showwarning = show
        yield


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

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

import contextlib
import itertools
import math
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from speech2face.errors import AudioError, ShortAudioWarning

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

# torchaudio's windowed-sinc resampler (torchaudio.functional.resample's defaults, passed
# explicitly): an output sample at native position p is a Hann-windowed sinc of the native
# samples i with |i - p| < ZERO_CROSSINGS * native / (ROLLOFF * min(native, output)), the
# filter's half-width in native samples. A cut therefore reads
# ceil(6 * native / (0.99 * min(native, 16000))) native samples more at each end than it
# keeps: 17 at 44.1 kHz (6 * 44100 / 15840 = 16.7), 19 at 48 kHz (18.2), 9 at 22.05 kHz (8.35),
# 7 at 8 kHz (6 * 8000 / 7920 = 6.06); see resample_margin().
RESAMPLE_ZERO_CROSSINGS = 6  # sinc zero crossings on each side of the filter's centre
RESAMPLE_ROLLOFF = 0.99  # cutoff as a fraction of the lower rate's Nyquist frequency
# torchaudio evaluates that filter once per output phase over a whole period of the two rates,
# a bank of (new / g) x (2 * margin + native / g) weights, g = gcd(native, new): 160 x 475 =
# 76,000 for 44.1 kHz to 16 kHz, 640 x 455 = 291,200 for 11.025 kHz (the largest of the usual
# rates), but 16,000 x 48,039 = 769 million for 48,001 Hz, which shares no factor with 16 kHz
# (3 GB, and 13 GB of s2f-infer's memory at its peak). Above this many weights, resample()
# evaluates the same filter at each output sample's own phase instead: 2 * margin + 1 weights
# a sample, whatever the rates' ratio (see _resample_by_phase).
RESAMPLE_BANK_LIMIT = 1 << 20  # weights: 4 MB in float32
# The file rates load_audio reads (in Hz; others are refused in one line before any decoding).
# Under 1 kHz a recording keeps nothing of a voice above 500 Hz, where its formants are, and
# each native sample becomes 16 or more at 16 kHz; 384 kHz is the highest rate audio hardware
# and formats use (DXD's 352.8 kHz, 384 kHz converters), and the filter's half-width grows
# with the rate (146 native samples at 384 kHz). Within these bounds resampling holds at most
# about 6 million weights (4.7 million from 383,999 Hz to 16 kHz: 16,000 phases x 293 taps).
MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 384_000

# After a seek, containers decode from this far before the first wanted sample, so that codecs
# whose frames overlap give there what a decode from the start gives: the larger of Opus's
# recommended pre-roll, 80 ms (3,840 samples at 48 kHz, RFC 7845 sec. 4.6), and two AAC frames
# of 1,024 samples (the MDCT overlaps each frame with the one before it).
SEEK_PREROLL_SECONDS = 0.08
SEEK_PREROLL_SAMPLES = 2 * 1024

_OPUS_RATE = 48_000  # Hz: Opus counts its pre-skip at 48 kHz whatever the decoder's output rate

# Containers that soundfile (libsndfile) reads; everything else goes through PyAV.
_SOUNDFILE_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".au"}
# How the files libsndfile reads begin: RIFF/RIFX/RF64/BW64 and Sony Wave64 ("riff") wav,
# AIFF ("FORM"), FLAC, Ogg, Sun/NeXT au (both byte orders), CAF, and an mp3's ID3 tag; an mp3
# without one starts with an MPEG frame's 11-bit sync (see _soundfile_reads). Anything else
# goes straight to FFmpeg, which also finds misnamed files (an m4a called .mp3).
_SOUNDFILE_MAGIC = (
    b"RIFF", b"RIFX", b"RF64", b"BW64", b"riff", b"FORM", b"fLaC", b"OggS", b".snd", b"dns.",
    b"caff", b"ID3",
)  # fmt: skip

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

    def plan(native_rate: int) -> _Cut:  # called once the rate is known, before decoding
        if not MIN_SAMPLE_RATE <= native_rate <= MAX_SAMPLE_RATE:
            bounds = f"{MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz"
            raise AudioError(f"{path}: sample rate {native_rate} Hz is outside {bounds}")
        return _plan_cut(native_rate, sample_rate, max_seconds, offset_seconds)

    if path.suffix.lower() in _SOUNDFILE_SUFFIXES and _soundfile_reads(path):
        try:
            data, native_rate = _read_soundfile(path, plan)
        except AudioError:
            raise
        except Exception as sf_error:  # libsndfile could not parse it: let FFmpeg try
            try:
                data, native_rate = _read_pyav(path, plan)
            except AudioError:
                message = f"{path}: not a readable audio file ({_one_line(sf_error)})"
                raise AudioError(message) from sf_error
    elif path.suffix.lower() in _SOUNDFILE_SUFFIXES:  # not what its name says: ask FFmpeg
        try:
            data, native_rate = _read_pyav(path, plan)
        except _NotMedia as error:
            message = f"{path}: not an audio file (its contents are in no format libsndfile or"
            raise AudioError(f"{message} FFmpeg reads)") from error
    else:
        data, native_rate = _read_pyav(path, plan)

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


def resample(wav: torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    """Band-limited resampling. ``wav``: ``(..., T)`` -> ``(..., ceil(T * new_rate / orig_rate))``.

    torchaudio's Hann-windowed sinc with :data:`RESAMPLE_ZERO_CROSSINGS` and
    :data:`RESAMPLE_ROLLOFF`; output sample ``j`` is the input at position
    ``j * orig_rate / new_rate``, zero-padded beyond both ends.

    Rates whose filter bank would hold more than :data:`RESAMPLE_BANK_LIMIT` weights (rates
    sharing few factors: 48,001 Hz to 16 kHz) are resampled by the same filter evaluated at
    each output sample's phase (:func:`_resample_by_phase`), in memory and time that do not
    grow with the rates' ratio. Its weights are computed in float64: on float64 input the two
    ways agree to 1e-13; on float32 input in [-1, 1] it lies within 3e-7 of the exact filter,
    where torchaudio's float32 bank is off by up to 4e-5 (11.025 kHz; 8e-6 at 44.1 kHz).
    """
    orig_rate, new_rate = int(orig_rate), int(new_rate)
    if orig_rate <= 0 or new_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_rate} and {new_rate}")
    if orig_rate == new_rate:
        return wav
    if not wav.is_floating_point():
        raise TypeError(f"resample needs floating-point samples, got {wav.dtype}")
    if _bank_size(orig_rate, new_rate) > RESAMPLE_BANK_LIMIT:
        return _resample_by_phase(wav, orig_rate, new_rate)
    import torchaudio.functional as AF

    return AF.resample(
        wav,
        orig_rate,
        new_rate,
        lowpass_filter_width=RESAMPLE_ZERO_CROSSINGS,
        rolloff=RESAMPLE_ROLLOFF,
    )


def _bank_size(orig_rate: int, new_rate: int) -> int:
    """Weights in torchaudio's filter bank for these rates: ``(new / g) x (2 * margin +
    orig / g)``, ``g = gcd(orig, new)`` (see :data:`RESAMPLE_BANK_LIMIT`)."""
    g = math.gcd(orig_rate, new_rate)
    return new_rate // g * (2 * resample_margin(orig_rate, new_rate) + orig_rate // g)


# Elements of the (..., J, taps) products _resample_by_phase forms at a time: 4 MB in float32.
_RESAMPLE_CHUNK = 1 << 20


def _resample_by_phase(wav: torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    """:func:`resample`'s filter at each output sample's phase: ``(..., T) -> (..., T')``.

    Output sample ``j`` lies at input position ``x = j * down / up`` (``down / up`` the
    rates' reduced ratio), ``floor(x) + r / up``; it weighs the ``2 * margin + 1`` input
    samples ``floor(x) - margin ... floor(x) + margin`` (:func:`resample_margin`) by
    :func:`_sinc_weights` of its phase ``r``. Once the output holds every phase, their
    weights are tabled (``up x (2 * margin + 1)``: 16,000 x 39 for 48,001 Hz to 16 kHz);
    shorter outputs evaluate their own. Outputs are formed ``_RESAMPLE_CHUNK`` products at a
    time. The phases, and so the weights, repeat every ``up`` outputs (``down`` inputs): a
    read starting ``k * down`` input samples later gives the same values, as
    :func:`load_audio`'s cuts need.
    """
    g = math.gcd(orig_rate, new_rate)
    down, up = orig_rate // g, new_rate // g
    margin = resample_margin(orig_rate, new_rate)
    taps = 2 * margin + 1
    length = wav.shape[-1]
    out_length = -(-length * up // down)  # ceil(T * up / down)
    flat = wav.reshape(-1, length)  # (B, T)
    batch = flat.shape[0]
    out = flat.new_empty(batch, out_length)  # (B, T')
    if out.numel() == 0:
        return out.reshape(*wav.shape[:-1], out_length)
    windows = torch.nn.functional.pad(flat, (margin, margin)).unfold(-1, taps, 1)  # (B, T, taps)
    step = max(1, _RESAMPLE_CHUNK // (batch * taps))  # output samples at a time
    table = None
    if out_length >= up:
        table = torch.empty(up, taps, dtype=wav.dtype, device=wav.device)  # (up, taps)
        for start in range(0, up, step):
            phases = torch.arange(start, min(start + step, up), device=wav.device)
            table[start : start + step] = _sinc_weights(phases, down, up, margin)
    for start in range(0, out_length, step):
        stop = min(start + step, out_length)
        position = torch.arange(start, stop, device=wav.device) * down  # (J,) x * up
        first, phase = position // up, position % up  # (J,): floor(x), r
        if table is not None:
            weights = table[phase]  # (J, taps)
        else:
            weights = _sinc_weights(phase, down, up, margin).to(wav.dtype)
        # windows[:, i] holds input samples i - margin ... i + margin
        out[:, start:stop] = (windows[:, first] * weights).sum(-1)  # (B, J, taps) -> (B, J)
    return out.reshape(*wav.shape[:-1], out_length)


def _sinc_weights(phase: torch.Tensor, down: int, up: int, margin: int) -> torch.Tensor:
    """torchaudio's Hann-windowed sinc at ``phase`` ``(P,)``: ``(P, 2 * margin + 1)`` float64.

    Row ``r`` weighs the input samples ``floor(x) - margin ... floor(x) + margin`` around an
    output at input position ``x = floor(x) + r / up`` (``down`` input samples span ``up``
    output samples). The filter's zero crossings are ``down / cutoff`` input samples apart,
    ``cutoff = RESAMPLE_ROLLOFF * min(down, up)``; it spans :data:`RESAMPLE_ZERO_CROSSINGS`
    of them on each side, with a ``cos^2`` window, and sums to about 1 (gain
    ``cutoff / down``).
    """
    cutoff = RESAMPLE_ROLLOFF * min(down, up)
    offsets = torch.arange(-margin, margin + 1, device=phase.device)  # (taps,)
    distance = offsets * up - phase[:, None]  # (P, taps): (input sample - x) * up, exact
    t = distance.double() * cutoff / (down * up)  # in zero crossings of the sinc
    t = t.clamp_(-RESAMPLE_ZERO_CROSSINGS, RESAMPLE_ZERO_CROSSINGS)
    window = torch.cos(t * (math.pi / (2 * RESAMPLE_ZERO_CROSSINGS))).square_()
    angle = t * math.pi
    sinc = torch.where(t == 0, 1.0, torch.sin(angle) / angle)
    return sinc * window * (cutoff / down)


def resample_margin(native_rate: int, sample_rate: int = SAMPLE_RATE) -> int:
    """Native samples on each side of an output sample's position that :func:`resample`
    weighs: ``ceil(6 * native_rate / (0.99 * min(native_rate, sample_rate)))`` (17 for
    44.1 kHz to 16 kHz, 19 for 48 kHz, 9 for 22.05 kHz, 7 for 8 kHz), 0 for equal rates."""
    if native_rate == sample_rate:
        return 0
    lower = min(native_rate, sample_rate)
    return math.ceil(RESAMPLE_ZERO_CROSSINGS * native_rate / (RESAMPLE_ROLLOFF * lower))


@dataclass(frozen=True)
class _Cut:
    """The native samples one cut decodes, and which of their resampled samples it keeps."""

    start: int  # first native sample decoded
    count: int | None  # native samples decoded from there (None: to the end of the file)
    skip: int  # resampled samples before the cut (the read starts earlier than the cut)
    length: int | None  # samples kept after those (None: to the end)

    @property
    def stop(self) -> int | None:
        return None if self.length is None else self.skip + self.length


def _plan_cut(
    native_rate: int, sample_rate: int, max_seconds: float | None, offset_seconds: float
) -> _Cut:
    """Which native samples give output samples ``[round(offset * sr), + round(max * sr))``
    exactly as resampling the whole file would (see :func:`load_audio`)."""
    first = int(round(offset_seconds * sample_rate))  # the cut's first output sample
    length = None if max_seconds is None else int(round(max_seconds * sample_rate))
    if native_rate == sample_rate:
        return _Cut(first, length, 0, length)
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
        return _Cut(period * down, None, skip, None)
    last = (first + length - 1) * down // up  # native sample at or before the last position
    return _Cut(period * down, last + margin + 1 - period * down, skip, length)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__


def _soundfile_reads(path: Path) -> bool:
    """Whether ``path`` begins like a file libsndfile reads (:data:`_SOUNDFILE_MAGIC`, or an
    MPEG audio frame's sync: 11 set bits)."""
    with open(path, "rb") as f:
        head = f.read(4)
    return head.startswith(_SOUNDFILE_MAGIC) or (head[:1] == b"\xff" and head[1:2] >= b"\xe0")


_stderr_lock = threading.Lock()
_stderr_users = 0
_stderr_saved: int | None = None


@contextlib.contextmanager
def _quiet_c_stderr() -> Iterator[None]:
    """Point file descriptor 2 at the null device while C libraries run: libmpg123 (inside
    libsndfile) writes notes such as "Note: Trying to resync..." there for damaged mp3s and
    after seeks, which no Python setting silences. Nested and concurrent uses share one
    redirection (the first in makes it, the last out restores fd 2); whatever any thread writes
    to stderr meanwhile is lost, so only short library calls go inside."""
    global _stderr_users, _stderr_saved
    with _stderr_lock:
        if _stderr_users == 0:
            try:
                sys.stderr.flush()
                saved = os.dup(2)
            except (OSError, ValueError, AttributeError):  # no fd 2, or a closed sys.stderr
                saved = None
            if saved is not None:
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, 2)
                os.close(null)
            _stderr_saved = saved
        _stderr_users += 1
    try:
        yield
    finally:
        with _stderr_lock:
            _stderr_users -= 1
            if _stderr_users == 0 and _stderr_saved is not None:
                os.dup2(_stderr_saved, 2)
                os.close(_stderr_saved)
                _stderr_saved = None


def _read_soundfile(path: Path, plan: Callable[[int], _Cut]) -> tuple[np.ndarray, int]:
    """Decode with libsndfile only the native samples ``plan(native_rate)`` names.
    Returns ``((T,), native_rate)``."""
    import soundfile as sf

    with _quiet_c_stderr(), sf.SoundFile(str(path)) as f:
        rate = f.samplerate
        cut = plan(rate)
        if f.seekable() and cut.start > 0:
            if cut.start >= f.frames:
                return np.zeros(0, dtype=np.float32), rate
            f.seek(cut.start)
        elif cut.start > 0:
            f.read(cut.start, dtype="float32", always_2d=True)
        count = -1 if cut.count is None else cut.count
        data = f.read(count, dtype="float32", always_2d=True)  # (T, C)
    return _downmix(data), rate


def _downmix(data: np.ndarray) -> np.ndarray:
    """Average channels: ``(T, C) -> (T,)`` (a matrix-vector product, faster than mean)."""
    if data.shape[1] == 1:
        return data[:, 0]
    return data @ np.full(data.shape[1], 1.0 / data.shape[1], dtype=data.dtype)


def _read_pyav(path: Path, plan: Callable[[int], _Cut]) -> tuple[np.ndarray, int]:
    """Decode the first audio stream with PyAV, only the native samples ``plan(native_rate)``
    names (after a seek when they start late enough). Returns ``((T,), native_rate)``."""
    seek_to = None  # native sample to seek to (0: none); set once the rate is known
    while True:
        container = _open_pyav(path)
        try:
            if not container.streams.audio:
                raise AudioError(f"{path}: has no audio stream")
            stream = container.streams.audio[0]
            rate = int(stream.codec_context.sample_rate or stream.rate or 0)
            if not rate:
                raise AudioError(f"{path}: audio stream has no sample rate")
            cut = plan(rate)
            if seek_to is None:
                preroll = max(math.ceil(SEEK_PREROLL_SECONDS * rate), SEEK_PREROLL_SAMPLES)
                seek_to = max(0, cut.start - preroll)
            data = _decode_pyav(path, container, stream, rate, cut, seek_to)
        finally:
            container.close()
        if data is not None:
            return data, rate
        # The seek could not place the cut: decode from the start of a fresh container (a
        # seek back to 0 would not drop an AAC encoder's priming samples as opening does).
        seek_to = 0


class _NotMedia(AudioError):
    """FFmpeg recognises no container format in the file."""


def _open_pyav(path: Path):
    import av

    try:
        return av.open(str(path), metadata_errors="ignore")
    except Exception as error:
        message = f"{path}: not a readable audio or video file ({_one_line(error)})"
        raise _NotMedia(message) from error


def _decode_pyav(
    path: Path, container, stream, rate: int, cut: _Cut, seek_to: int
) -> np.ndarray | None:
    """Native samples ``[cut.start, cut.start + cut.count)`` of ``stream`` averaged to mono,
    ``(T,)`` float32, decoded from the start or (``seek_to > 0``) from a seek to native sample
    ``seek_to``; ``None`` when the seek lands past ``cut.start`` or on frames without
    timestamps, so that only a decode from the start can place the cut.

    Sample 0 is where a decode from the start puts it (:func:`_first_frames`). From the start,
    samples are counted from there; after a seek, the first frame is placed by its timestamp
    relative to sample 0's and the rest are counted. Timestamps coarser than a sample
    (Matroska's milliseconds) are snapped to the grid the codec's packets fall on where that is
    wider than a tick (:func:`_packet_step`), and otherwise place a seek to within a tick.
    """
    import av

    packets = container.demux(stream)
    try:
        pending, origin, position = _first_frames(packets, stream, rate)
        step = 0
        if seek_to > 0:
            # Packets start on a grid of `step` samples from the frame after the first (whose
            # head may have gone to priming): where timestamps are coarser than a sample and
            # the grid is wider than their tick, a seek snaps to it.
            step = _packet_step(stream, rate)
            tick = stream.time_base
            if not (Fraction(1, rate) < tick < Fraction(step, rate)):
                step = 0
            anchor = position + (pending[0].samples if pending else 0)
            packets.close()
            target = Fraction(seek_to + origin, rate) / stream.time_base
            container.seek(math.floor(target), stream=stream, backward=True)
            packets = container.demux(stream)
            pending, position = [], None
        # Normalise every frame to planar float32 at the stream's own rate and layout.
        to_float = av.AudioResampler(format="fltp", rate=rate)
        chunks: list[np.ndarray] = []
        have = 0
        for frame in itertools.chain(pending, _frames(packets)):
            if position is None:  # the first frame after a seek
                time = _timestamp(frame, stream, rate)
                if time is None:
                    return None
                position = time - origin
                if step:
                    position = anchor + step * round((position - anchor) / step)
                if position > cut.start:
                    return None
            for out in to_float.resample(frame):
                block = out.to_ndarray().mean(axis=0)  # (C, n) -> (n,)
                if position < cut.start:
                    block = block[cut.start - position :]
                position += out.samples
                if block.size:
                    chunks.append(block)
                    have += block.size
            if cut.count is not None and have >= cut.count:
                break
    except AudioError:
        raise
    except Exception as error:
        if not chunks:
            message = f"{path}: could not decode audio ({_one_line(error)})"
            raise AudioError(message) from error
        # A damaged tail: keep what decoded cleanly before it.
    finally:
        packets.close()
    data = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    return data if cut.count is None else data[: cut.count]


def _frames(packets) -> Iterator:
    """Decoded frames of ``packets`` (a demuxer, with its final flush packets)."""
    for packet in packets:
        yield from packet.decode()


def _first_frames(packets, stream, rate: int) -> tuple[list, int, int]:
    """Decode from the start of ``stream`` to its first frame with samples.

    Returns ``(frames, origin, position)``: that frame and any more its packet gave (``[]`` if
    there are none), the native sample on the stream's clock (its timestamps times ``rate``)
    that is sample 0, and where the first frame starts relative to sample 0.

    Sample 0 is the first sample the decoder presents (FFmpeg drops what the file marks as
    priming: mp4/m4a/mov edit lists, Matroska's CodecDelay, the mp3 LAME/Info header's encoder
    delay, Ogg granules, Opus pre-skip), less an Opus pre-skip it let through
    (:func:`_opus_lead`); samples timed before 0 on the clock are dropped, and a track that
    starts after 0 starts at sample 0 (it is not padded).
    """
    lead = None
    for packet in packets:
        if lead is None:
            lead = _opus_lead(stream, packet, rate)
        frames = [frame for frame in packet.decode() if frame.samples]
        if frames:
            time = _timestamp(frames[0], stream, rate)
            time = 0 if time is None else time
            origin = max(0, time + lead)
            return frames, origin, time - origin
    return [], 0, 0


def _timestamp(frame, stream, rate: int) -> int | None:
    """Where ``frame`` starts on its stream's clock, in native samples (None: no timestamp)."""
    if frame.pts is None:
        return None
    return round(frame.pts * (frame.time_base or stream.time_base) * rate)


def _packet_step(stream, rate: int) -> int:
    """Native samples every packet of ``stream`` lasts a multiple of, or 0 when the codec does
    not fix one (Vorbis, FLAC): the frame of fixed-frame codecs (1,024 for AAC, 576 or 1,152
    for mp3), or 2.5 ms for Opus, whose frames last 2.5, 5, 10, 20, 40 or 60 ms (RFC 6716
    sec. 2.1.4)."""
    context = stream.codec_context
    if context.frame_size:
        return int(context.frame_size)
    if bytes(context.extradata or b"")[:8] == b"OpusHead" and rate % 400 == 0:
        return rate // 400
    return 0


def _opus_lead(stream, packet, rate: int) -> int:
    """Samples of Opus pre-skip that a decode from the start presents although the file says
    to drop them (0 for other codecs).

    The OpusHead header states the pre-skip at 48 kHz (RFC 7845 sec. 5.1); FFmpeg's decoder
    drops that many unless the container asks it, on the first packet, to drop another number
    (Matroska's CodecDelay, mp4's initial padding). FFmpeg 5.1 writes CodecDelay from the
    encoder's look-ahead counted at its input rate (104 samples for 16 kHz input, 156 for 24
    kHz, not 312), so the decoder kept 208 (or 156) pre-skip samples: a start 69 (52) samples
    late at 16 kHz. A container asking for more than the pre-skip (Ogg's start trimming) is
    followed.
    """
    extradata = bytes(stream.codec_context.extradata or b"")
    has_sidedata = getattr(packet, "has_sidedata", None)  # absent from older PyAV
    if extradata[:8] != b"OpusHead" or len(extradata) < 12 or has_sidedata is None:
        return 0
    if not has_sidedata("skip_samples"):
        return 0  # the decoder drops the OpusHead's pre-skip itself
    skip = int.from_bytes(bytes(packet.get_sidedata("skip_samples"))[:4], "little")
    pre_skip = int.from_bytes(extradata[10:12], "little") * rate // _OPUS_RATE
    return max(0, pre_skip - skip)


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

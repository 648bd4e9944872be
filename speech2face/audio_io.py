"""Decoding audio files: libsndfile (soundfile) for the formats it reads, FFmpeg (PyAV) for
the rest, each reading only the native samples a :class:`Cut` names.

:func:`speech2face.audio.load_audio` plans the cut, picks the reader and resamples what it
returns; this module places sample 0 (encoder priming, Opus pre-skip) and seeks.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from speech2face.errors import AudioError

# After a seek, containers decode from this far before the first wanted sample, so that codecs
# whose frames overlap give there what a decode from the start gives: the larger of Opus's
# recommended pre-roll, 80 ms (3,840 samples at 48 kHz, RFC 7845 sec. 4.6), and two AAC frames
# of 1,024 samples (the MDCT overlaps each frame with the one before it).
SEEK_PREROLL_SECONDS = 0.08
SEEK_PREROLL_SAMPLES = 2 * 1024

_OPUS_RATE = 48_000  # Hz: Opus counts its pre-skip at 48 kHz whatever the decoder's output rate

# Containers that soundfile (libsndfile) reads; everything else goes through PyAV.
SOUNDFILE_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".au"}
# How the files libsndfile reads begin: RIFF/RIFX/RF64/BW64 and Sony Wave64 ("riff") wav,
# AIFF ("FORM"), FLAC, Ogg, Sun/NeXT au (both byte orders), CAF, and an mp3's ID3 tag; an mp3
# without one starts with an MPEG frame's 11-bit sync (see soundfile_reads). Anything else
# goes straight to FFmpeg, which also finds misnamed files (an m4a called .mp3).
_SOUNDFILE_MAGIC = (
    b"RIFF", b"RIFX", b"RF64", b"BW64", b"riff", b"FORM", b"fLaC", b"OggS", b".snd", b"dns.",
    b"caff", b"ID3",
)  # fmt: skip


@dataclass(frozen=True)
class Cut:
    """The native samples one cut decodes, and which of their resampled samples it keeps."""

    start: int  # first native sample decoded
    count: int | None  # native samples decoded from there (None: to the end of the file)
    skip: int  # resampled samples before the cut (the read starts earlier than the cut)
    length: int | None  # samples kept after those (None: to the end)

    @property
    def stop(self) -> int | None:
        return None if self.length is None else self.skip + self.length


def one_line(error: BaseException) -> str:
    """``error``'s message on one line, or its type's name when it has none."""
    text = " ".join(str(error).split())
    return text or type(error).__name__


def soundfile_reads(path: Path) -> bool:
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


def read_soundfile(path: Path, plan: Callable[[int], Cut]) -> tuple[np.ndarray, int]:
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


def read_pyav(path: Path, plan: Callable[[int], Cut]) -> tuple[np.ndarray, int]:
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


class NotMedia(AudioError):
    """FFmpeg recognises no container format in the file."""


def _open_pyav(path: Path):
    import av

    try:
        return av.open(str(path), metadata_errors="ignore")
    except Exception as error:
        message = f"{path}: not a readable audio or video file ({one_line(error)})"
        raise NotMedia(message) from error


def _decode_pyav(
    path: Path, container, stream, rate: int, cut: Cut, seek_to: int
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
            message = f"{path}: could not decode audio ({one_line(error)})"
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

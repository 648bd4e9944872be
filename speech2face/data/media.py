"""Decoding one segment's media with PyAV: stream probe, frames at given times, audio.

Every problem with an input file raises :class:`MediaError` carrying one of
:data:`REASONS`, which the preprocessing records in ``failures.jsonl``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speech2face.audio import SAMPLE_RATE, load_audio
from speech2face.errors import AudioError

__all__ = [
    "REASONS",
    "MediaError",
    "MediaInfo",
    "frame_times",
    "probe",
    "read_frames",
    "read_image",
    "read_pcm16",
    "to_pcm16",
]

# Why a segment was rejected (the ``reason`` field of failures.jsonl).
REASONS = (
    "bad_row",  # the data file's row is malformed or names an unsafe ID or path
    "missing_file",  # the media file does not exist
    "download_failed",  # yt-dlp could not fetch it (removed, private, network)
    "decode_error",  # empty, truncated, corrupt or not a media file
    "no_audio_stream",
    "no_video_stream",
    "too_short",  # less audio than min_seconds in the segment
    "no_face",  # no confident speaker face at the segment's start (or in any frame, without a hint)
    "internal_error",  # an unexpected exception (a bug, or a file no check foresaw)
)
# float [-1, 1] -> int16: x -> round(x * 32768) clipped to [-32768, 32767], the inverse of
# the dataset's int16 / 32768 (full scale +1.0 clips to 32767, one step below).
PCM_SCALE = 32768
PCM_MIN, PCM_MAX = -32768, 32767  # the int16 range
SEEK_GAP_SECONDS = 2.0  # decode forward instead of seeking when the next time is this close
FRAME_TOLERANCE_SECONDS = 1.0  # accept the last frame when a time lies past the stream's end


class MediaError(Exception):
    """A segment that cannot be used; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown failure reason {reason!r}")
        super().__init__(detail)
        self.reason = reason
        self.detail = " ".join(str(detail).split())


@dataclass(frozen=True)
class MediaInfo:
    has_audio: bool
    has_video: bool
    duration: float | None  # seconds, from the container when it knows


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise MediaError("missing_file", f"file not found: {path.name}")
    if path.stat().st_size == 0:
        raise MediaError("decode_error", f"{path.name}: file is empty")


def probe(path: Path) -> MediaInfo:
    """Which streams ``path`` has; :class:`MediaError` if FFmpeg cannot open it."""
    import av

    _check_file(path)
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            duration = None
            if container.duration is not None:
                duration = container.duration / 1_000_000  # microseconds
            return MediaInfo(
                has_audio=bool(container.streams.audio),
                has_video=bool(container.streams.video),
                duration=duration,
            )
    except MediaError:
        raise
    except Exception as error:
        raise MediaError("decode_error", f"{path.name}: {_one_line(error)}") from None


def frame_times(start: float, end: float, count: int) -> list[float]:
    """``count`` times across ``[start, end)``, the first at ``start``, then every
    ``(end - start) / count`` seconds.

    The first is the segment's start, where a source's face-centre hint places the speaker
    (AVSpeech gives the face centre at the segment's start); the others spread through the
    segment, where the speaker is followed by identity.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    step = (end - start) / count
    return [start + i * step for i in range(count)]


def read_frames(path: Path, times: Sequence[float]) -> list[tuple[float, np.ndarray]]:
    """The first frame at or after each time (seconds): ``[(time, (H, W, 3) uint8 RGB)]``.

    Seeks to the keyframe before a time that lies ahead of the decoder by more than
    :data:`SEEK_GAP_SECONDS`, otherwise decodes forward. A time past the end gets the last
    frame if it is within :data:`FRAME_TOLERANCE_SECONDS`; frames that cannot be reached are
    left out, so the result may be shorter than ``times``.
    """
    import av

    _check_file(path)
    wanted = sorted(float(t) for t in times)
    out: list[tuple[float, np.ndarray]] = []
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except Exception as error:
        raise MediaError("decode_error", f"{path.name}: {_one_line(error)}") from None
    try:
        if not container.streams.video:
            raise MediaError("no_video_stream", f"{path.name}: has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        decoder = None
        position = -math.inf  # time of the last decoded frame
        last: tuple[float, object] | None = None
        for target in wanted:
            if decoder is None or target - position > SEEK_GAP_SECONDS:
                if target > SEEK_GAP_SECONDS and stream.time_base is not None:
                    container.seek(int(target / stream.time_base), stream=stream, backward=True)
                decoder = container.decode(stream)
                last = None
            found = None
            for frame in decoder:
                if frame.pts is None:
                    continue
                t = float(frame.pts * frame.time_base)
                position = t
                last = (t, frame)
                if t >= target - 1e-3:
                    found = (t, frame)
                    break
            if found is None and last is not None and target - last[0] <= FRAME_TOLERANCE_SECONDS:
                found = last
            if found is not None:
                out.append((found[0], found[1].to_ndarray(format="rgb24")))
    except MediaError:
        raise
    except Exception as error:
        if not out:
            raise MediaError("decode_error", f"{path.name}: {_one_line(error)}") from None
    finally:
        container.close()
    return out


def read_image(path: Path) -> np.ndarray:
    """A still image as ``(H, W, 3)`` uint8 RGB."""
    from PIL import Image, UnidentifiedImageError

    _check_file(path)
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise MediaError("decode_error", f"{path.name}: {_one_line(error)}") from None


def read_pcm16(path: Path, offset: float, seconds: float, min_seconds: float) -> np.ndarray:
    """Up to ``seconds`` of mono 16 kHz audio from ``offset`` as int16 ``(T,)``.

    Raises :class:`MediaError` (``too_short``) when less than ``min_seconds`` is there.
    """
    try:
        wav = load_audio(path, SAMPLE_RATE, max_seconds=seconds, offset_seconds=offset)
    except AudioError as error:
        text = str(error)
        reason = "no_audio_stream" if "no audio stream" in text else "decode_error"
        if "past the end" in text or "contains no audio samples" in text:
            reason = "too_short"
        raise MediaError(reason, text.replace(str(path), path.name)) from None
    if wav.numel() < int(round(min_seconds * SAMPLE_RATE)):
        raise MediaError(
            "too_short", f"{wav.numel() / SAMPLE_RATE:.2f} s of audio, need {min_seconds:g} s"
        )
    return to_pcm16(wav.numpy())


def to_pcm16(wav: np.ndarray) -> np.ndarray:
    """Float samples ``(T,)`` in [-1, 1] -> int16 ``(T,)``: ``round(x * 32768)``, clipped."""
    scaled = np.round(np.asarray(wav, dtype=np.float64) * PCM_SCALE)
    return np.clip(scaled, PCM_MIN, PCM_MAX).astype(np.int16)

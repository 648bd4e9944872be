"""Generated media for tests: tones written as real audio and video files."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np


def tone(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    """A sine of ``freq`` Hz: ``(round(seconds * rate),)`` float64."""
    t = np.arange(int(round(seconds * rate))) / rate
    return amplitude * np.sin(2 * np.pi * freq * t)


def chirp(f0: float, f1: float, seconds: float, rate: int, amplitude: float = 0.4) -> np.ndarray:
    """A linear sweep from ``f0`` to ``f1`` Hz: ``(round(seconds * rate),)`` float64."""
    t = np.arange(int(round(seconds * rate))) / rate
    return amplitude * np.sin(2 * np.pi * (f0 * t + 0.5 * (f1 - f0) / seconds * t * t))


def dominant_frequency(wav: np.ndarray, rate: int) -> float:
    """Frequency (Hz) of the strongest FFT bin of ``wav`` ``(T,)``."""
    spectrum = np.abs(np.fft.rfft(wav * np.hanning(len(wav))))
    return float(np.argmax(spectrum) * rate / len(wav))


def write_pcm16_wav(path: Path, audio: np.ndarray, rate: int) -> Path:
    """Write ``audio`` ``(T,)`` in [-1, 1] as a 16-bit mono PCM wav whose header says ``rate``
    Hz, whatever the rate: the 44-byte RIFF header written by hand."""
    pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, rate, 2 * rate, 2, 16)
    riff = struct.pack("<4sI4s", b"RIFF", 4 + len(fmt) + 8 + len(pcm), b"WAVE")
    path.write_bytes(riff + fmt + struct.pack("<4sI", b"data", len(pcm)) + pcm)
    return path


def write_av(
    path: Path,
    audio: np.ndarray | None,
    rate: int = 16_000,
    video_seconds: float = 0.0,
    codec: str = "aac",
    container_options: dict[str, str] | None = None,
    codec_options: dict[str, str] | None = None,
) -> Path:
    """Write ``audio`` ``(T,)`` or ``(C, T)`` (and/or a grey video track) with PyAV.

    The video track is VP8 in WebM (which allows nothing else here), MPEG-4 Part 2 elsewhere.
    ``container_options`` go to the muxer (``{"write_xing": "0"}``: an mp3 without its
    gapless header), ``codec_options`` to the audio encoder.
    """
    import av

    with av.open(str(path), "w", options=container_options or {}) as container:
        vstream = None
        if video_seconds > 0:
            vcodec = "libvpx" if path.suffix.lower() == ".webm" else "mpeg4"
            vstream = container.add_stream(vcodec, rate=10)
            vstream.width, vstream.height, vstream.pix_fmt = 64, 64, "yuv420p"
        astream = None
        if audio is not None:
            audio = np.atleast_2d(np.asarray(audio, dtype=np.float32))
            layout = "mono" if audio.shape[0] == 1 else "stereo"
            astream = container.add_stream(
                codec, rate=rate, layout=layout, options=codec_options or {}
            )
        if vstream is not None:
            for i in range(int(video_seconds * 10)):
                img = np.full((64, 64, 3), (i * 7) % 255, dtype=np.uint8)
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                container.mux(vstream.encode(frame))
            container.mux(vstream.encode(None))
        if astream is not None:
            block = 1024
            for start in range(0, audio.shape[1], block):
                chunk = np.ascontiguousarray(audio[:, start : start + block])
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
                frame.sample_rate = rate
                frame.pts = start
                container.mux(astream.encode(frame))
            container.mux(astream.encode(None))
    return path


def set_matroska_codec_delay(path: Path, nanoseconds: int) -> Path:
    """Rewrite the CodecDelay element (ID 0x56AA) of a Matroska/WebM file in place.

    The value keeps the element's size, so nothing else in the file moves. Writing 2,166,667
    ns into a 16 kHz Opus WebM gives what FFmpeg 5.1 writes: a CodecDelay of 104 samples at
    48 kHz (the encoder's 6.5 ms look-ahead counted at 16 kHz) against the OpusHead's 312.
    """
    data = bytearray(path.read_bytes())
    at = data.find(b"\x56\xaa")
    if at < 0:
        raise ValueError(f"{path}: no CodecDelay element")
    size_byte = data[at + 2]  # a one-byte EBML size: 0x80 | size
    if not size_byte & 0x80:
        raise ValueError(f"{path}: CodecDelay size is not one byte")
    size = size_byte & 0x7F
    data[at + 3 : at + 3 + size] = nanoseconds.to_bytes(size, "big")
    path.write_bytes(bytes(data))
    return path


def lag_samples(wav: np.ndarray, reference: np.ndarray, max_lag: int = 4000) -> float:
    """How many samples ``wav`` ``(T,)`` lags ``reference`` ``(T',)``: the peak of their
    cross-correlation within ``max_lag``, refined to a fraction of a sample by a parabola
    through the peak and its neighbours (negative: ``wav`` starts early)."""
    n = 1 << int(np.ceil(np.log2(len(wav) + len(reference))))
    spectrum = np.fft.rfft(wav, n) * np.conj(np.fft.rfft(reference, n))
    corr = np.fft.irfft(spectrum, n)
    corr = np.concatenate([corr[-max_lag:], corr[: max_lag + 1]])  # lags -max_lag..max_lag
    peak = int(np.argmax(corr))
    if 0 < peak < len(corr) - 1:
        left, mid, right = corr[peak - 1 : peak + 2]
        peak += 0.5 * (left - right) / (left - 2 * mid + right)
    return float(peak - max_lag)

"""Generated media for tests: tones written as real audio and video files."""

from __future__ import annotations

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


def write_av(
    path: Path,
    audio: np.ndarray | None,
    rate: int = 16_000,
    video_seconds: float = 0.0,
    codec: str = "aac",
) -> Path:
    """Write ``audio`` ``(T,)`` or ``(C, T)`` (and/or a grey video track) with PyAV."""
    import av

    with av.open(str(path), "w") as container:
        vstream = None
        if video_seconds > 0:
            vstream = container.add_stream("mpeg4", rate=10)
            vstream.width, vstream.height, vstream.pix_fmt = 64, 64, "yuv420p"
        astream = None
        if audio is not None:
            audio = np.atleast_2d(np.asarray(audio, dtype=np.float32))
            layout = "mono" if audio.shape[0] == 1 else "stereo"
            astream = container.add_stream(codec, rate=rate, layout=layout)
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

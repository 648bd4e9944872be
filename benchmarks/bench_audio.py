"""Audio front end: spectrogram throughput, ``load_audio`` real-time factor, and resampling
at rates that share no factor with 16 kHz.

Reference for the spectrogram: a vectorised NumPy implementation of the same transform
(strided frames, periodic Hann, ``rfft(n=512)``, power law), timed in the same run; for the
odd rates, the ordinary rate beside each (48,001 Hz against 48 kHz), timed in the same run.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from benchmarks.common import best_time
from speech2face import audio
from speech2face.audio import HOP_LENGTH, N_FFT, N_SAMPLES, WIN_LENGTH, load_audio, spectrogram

BATCH = 64
LONG_SECONDS = 60.0
# (ordinary rate, odd rate beside it): torchaudio's filter bank against resampling by phase.
RATE_PAIRS = ((48_000, 48_001), (44_100, 44_101), (22_050, 16_001))


def numpy_spectrogram(wav: np.ndarray) -> np.ndarray:
    """``(B, T)`` float32 -> ``(B, 2, F, 257)`` with NumPy only."""
    frames = np.lib.stride_tricks.sliding_window_view(wav, WIN_LENGTH, axis=-1)[
        ..., ::HOP_LENGTH, :
    ]
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WIN_LENGTH) / WIN_LENGTH)).astype(np.float32)
    spec = np.fft.rfft(frames * window, n=N_FFT, axis=-1)
    parts = np.stack([spec.real, spec.imag], axis=-3)
    return (np.sign(parts) * np.abs(parts) ** 0.3).astype(np.float32)


def bench_spectrogram() -> None:
    wav = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (BATCH, N_SAMPLES))).float()
    with torch.inference_mode():
        t_torch = best_time(lambda: spectrogram(wav))
    t_numpy = best_time(lambda: numpy_spectrogram(wav.numpy()), repeats=2)
    print(f"spectrogram, batch {BATCH} x 6 s, CPU:")
    print(f"  speech2face.audio.spectrogram  {BATCH / t_torch:8.1f} clips/s  ({t_torch:.3f} s)")
    print(f"  NumPy reference                {BATCH / t_numpy:8.1f} clips/s  ({t_numpy:.3f} s)")
    print(f"  ratio (speech2face / NumPy)    {t_numpy / t_torch:8.2f}x")
    if torch.cuda.is_available():
        gpu = wav.cuda()
        spectrogram(gpu)
        torch.cuda.synchronize()

        def on_gpu() -> None:
            spectrogram(gpu)
            torch.cuda.synchronize()

        t_gpu = best_time(on_gpu, repeats=10)
        print(f"  CUDA ({torch.cuda.get_device_name()})  {BATCH / t_gpu:8.1f} clips/s")


def bench_load() -> None:
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as tmp:
        files = {
            "16 kHz wav": (Path(tmp) / "long.wav", 16_000, "PCM_16"),
            "44.1 kHz mp3": (Path(tmp) / "long.mp3", 44_100, "MPEG_LAYER_III"),
        }
        print(f"load_audio, {LONG_SECONDS:.0f} s files -> 16 kHz mono (real-time factor):")
        for label, (path, rate, subtype) in files.items():
            signal = 0.3 * rng.standard_normal((int(LONG_SECONDS * rate), 2))
            sf.write(path, signal, rate, subtype=subtype)
            t_load = best_time(lambda p=path: load_audio(p), repeats=2)
            t_raw = best_time(lambda p=path: sf.read(p, dtype="float32"), repeats=2)
            print(
                f"  {label:<13} {LONG_SECONDS / t_load:8.0f}x real time"
                f"  (soundfile.read alone {LONG_SECONDS / t_raw:.0f}x;"
                f" load_audio / read time {t_load / t_raw:.2f})"
            )


def filter_weights(rate: int) -> int:
    """Filter weights :func:`speech2face.audio.resample` holds for ``rate`` to 16 kHz."""
    bank = audio._bank_size(rate, 16_000)
    if bank <= audio.RESAMPLE_BANK_LIMIT:
        return bank
    up = 16_000 // math.gcd(rate, 16_000)  # phases tabled once the output holds them all
    return up * (2 * audio.resample_margin(rate) + 1)


def bench_rates() -> None:
    rng = np.random.default_rng(2)
    print(f"resample, {LONG_SECONDS:.0f} s -> 16 kHz, odd rates against the ordinary one beside:")
    for ordinary, odd in RATE_PAIRS:
        times = {}
        for rate in (ordinary, odd):
            wav = torch.from_numpy(rng.uniform(-0.5, 0.5, int(LONG_SECONDS * rate))).float()
            times[rate] = best_time(lambda w=wav, r=rate: audio.resample(w, r, 16_000), repeats=2)
            speed = LONG_SECONDS / times[rate]
            print(
                f"  {rate:>6} Hz  {times[rate]:7.3f} s  {speed:6.0f}x real time"
                f"  ({filter_weights(rate):,} filter weights)"
            )
        print(f"  ratio ({odd} / {ordinary} Hz)  {times[odd] / times[ordinary]:6.2f}x")


def main() -> None:
    bench_spectrogram()
    bench_load()
    bench_rates()


if __name__ == "__main__":
    main()

"""The paper's audio front end, checked against an independent NumPy reference."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from speech2face import audio
from speech2face.audio import (
    MIN_VOICE_SECONDS,
    N_FRAMES,
    N_FREQ,
    N_SAMPLES,
    AudioError,
    ShortAudioWarning,
    fit_to_length,
    load_audio,
    num_frames,
    one_line_warnings,
    resample,
    resample_margin,
    spectrogram,
)
from tests.media import (
    chirp,
    dominant_frequency,
    lag_samples,
    set_matroska_codec_delay,
    tone,
    write_av,
)


def reference_spectrogram(wav: np.ndarray) -> np.ndarray:
    """tf.signal.stft-style framing written with NumPy only: ``(T,) -> (2, F, 257)``."""
    win, hop, n_fft = 400, 160, 512
    count = 1 + (len(wav) - win) // hop
    frames = np.stack([wav[i * hop : i * hop + win] for i in range(count)])
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)  # periodic Hann
    spec = np.fft.rfft(frames * window, n=n_fft, axis=-1)
    parts = np.stack([spec.real, spec.imag])
    return np.sign(parts) * np.abs(parts) ** 0.3


# --------------------------------------------------------------------------- spectrogram


def test_constants_follow_the_paper():
    assert N_SAMPLES == 96_000
    assert N_FRAMES == 598 == num_frames(96_000)
    assert N_FREQ == 257
    assert num_frames(48_000) == 298


def test_spectrogram_matches_numpy_reference():
    rng = np.random.default_rng(0)
    wav = rng.uniform(-1, 1, N_SAMPLES)
    expected = reference_spectrogram(wav)
    got = spectrogram(torch.from_numpy(wav).float()).numpy()
    assert got.shape == (2, 598, 257) == expected.shape
    # float32 FFT round-off is amplified by |x|**0.3 only where |x| is tiny, so compare norms.
    rel = np.linalg.norm(got - expected) / np.linalg.norm(expected)
    assert rel < 1e-4
    # In float64 the two agree element by element.
    got64 = spectrogram(torch.from_numpy(wav)).double().numpy()
    np.testing.assert_allclose(got64, expected, rtol=1e-4, atol=1e-5)


def test_spectrogram_is_not_torch_stft_framing():
    """598 frames, where torch.stft(n_fft=512, center=False) would give 597."""
    wav = torch.randn(N_SAMPLES)
    stft = torch.stft(wav, 512, 160, 400, torch.hann_window(400), center=False, return_complex=True)
    assert stft.shape[-1] == 597
    assert spectrogram(wav).shape[-2] == 598


def test_spectrogram_is_batched_and_compresses_real_and_imag_separately():
    rng = np.random.default_rng(1)
    batch = torch.from_numpy(rng.standard_normal((3, 2, 20_000))).float()
    spec = spectrogram(batch)
    assert spec.shape == (3, 2, 2, num_frames(20_000), 257)
    assert spec.dtype == torch.float32
    single = spectrogram(batch[1, 0])
    torch.testing.assert_close(spec[1, 0], single, rtol=1e-5, atol=1e-6)
    # Uncompressing each channel recovers a complex STFT whose phase is the raw one.
    raw = reference_spectrogram(batch[2, 1].double().numpy())
    np.testing.assert_allclose(spec[2, 1].numpy(), raw, rtol=1e-3, atol=1e-4)
    re, im = spec[2, 1, 0], spec[2, 1, 1]
    assert (re < 0).any() and (im < 0).any()  # signs survive compression


def test_spectrogram_of_a_tone_peaks_at_its_bin():
    wav = torch.from_numpy(tone(1000.0, 6.0, 16_000)).float()
    spec = spectrogram(wav)
    magnitude = (spec[0].abs() ** (1 / 0.3)) ** 2 + (spec[1].abs() ** (1 / 0.3)) ** 2
    peak_bin = magnitude.mean(0).argmax().item()
    assert peak_bin == 32  # 1000 Hz * 512 / 16000


def test_spectrogram_rejects_too_short_input():
    with pytest.raises(ValueError, match="at least 400"):
        spectrogram(torch.zeros(399))


@pytest.mark.gpu
def test_spectrogram_on_cuda_matches_cpu():
    wav = torch.randn(4, N_SAMPLES)
    torch.testing.assert_close(
        spectrogram(wav.cuda()).cpu(), spectrogram(wav), rtol=1e-4, atol=1e-4
    )


# --------------------------------------------------------------------------- clip rule


def test_fit_to_length_tiles_a_3s_clip_then_cuts():
    clip = torch.arange(48_000, dtype=torch.float32)
    out = fit_to_length(clip)
    assert out.shape == (96_000,)
    torch.testing.assert_close(out[:48_000], clip)
    torch.testing.assert_close(out[48_000:], clip)


def test_fit_to_length_repeats_partial_tail_and_cuts_long_clips():
    clip = torch.arange(40_000, dtype=torch.float32)  # 2.5 s: clip, clip, first 1 s
    out = fit_to_length(clip)
    torch.testing.assert_close(out[80_000:], clip[:16_000])
    long = torch.arange(200_000, dtype=torch.float32)
    torch.testing.assert_close(fit_to_length(long), long[:96_000])
    batch = torch.stack([clip, clip + 1])
    assert fit_to_length(batch, 50_000).shape == (2, 50_000)
    with pytest.raises(AudioError):
        fit_to_length(torch.zeros(0))


# --------------------------------------------------------------------------- loading


def test_stereo_44k_wav_loads_mono_16k_with_the_tone_in_place(tmp_path):
    left = tone(440.0, 2.0, 44_100)
    stereo = np.stack([left, left], axis=1)
    path = tmp_path / "stereo.wav"
    sf.write(path, stereo, 44_100, subtype="PCM_16")
    wav = load_audio(path)
    assert wav.dtype == torch.float32 and wav.dim() == 1
    assert abs(wav.shape[0] - 32_000) <= 1
    assert dominant_frequency(wav.numpy(), 16_000) == pytest.approx(440.0, abs=2.0)
    assert wav.abs().max() == pytest.approx(0.5, abs=0.02)


def test_channels_are_averaged(tmp_path):
    a, b = tone(300.0, 1.0, 16_000), tone(1200.0, 1.0, 16_000)
    path = tmp_path / "two.wav"
    sf.write(path, np.stack([a, b], axis=1), 16_000, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(path).numpy(), (a + b) / 2, atol=1e-6)


def test_8k_unsigned_8bit_wav(tmp_path):
    path = tmp_path / "u8.wav"
    sf.write(path, tone(500.0, 3.0, 8_000), 8_000, subtype="PCM_U8")
    assert sf.info(path).subtype == "PCM_U8"
    wav = load_audio(path)
    assert abs(wav.shape[0] - 48_000) <= 1
    assert dominant_frequency(wav.numpy(), 16_000) == pytest.approx(500.0, abs=2.0)
    assert abs(wav.mean().item()) < 0.01  # unsigned offset removed


@pytest.mark.parametrize(
    "suffix, subtype",
    [
        (".wav", "PCM_24"),
        (".wav", "PCM_32"),
        (".wav", "FLOAT"),
        (".flac", "PCM_16"),
        (".ogg", "VORBIS"),
        (".mp3", "MPEG_LAYER_III"),
    ],
)
def test_soundfile_formats(tmp_path, suffix, subtype):
    path = tmp_path / f"tone{suffix}"
    sf.write(path, tone(800.0, 1.5, 22_050), 22_050, subtype=subtype)
    wav = load_audio(path)
    assert abs(wav.shape[0] - 24_000) < 1200  # lossy codecs pad a little
    assert dominant_frequency(wav.numpy(), 16_000) == pytest.approx(800.0, abs=3.0)


@pytest.mark.parametrize("suffix", [".mp4", ".m4a", ".mov"])
def test_video_container_audio_track(tmp_path, suffix):
    path = write_av(tmp_path / f"clip{suffix}", tone(600.0, 2.0, 48_000), rate=48_000)
    wav = load_audio(path)
    assert abs(wav.shape[0] - 32_000) < 1600
    assert dominant_frequency(wav.numpy(), 16_000) == pytest.approx(600.0, abs=3.0)


def test_webm_with_video_and_opus_audio(tmp_path):
    path = write_av(tmp_path / "clip.webm", tone(700.0, 1.0, 48_000), rate=48_000, codec="libopus")
    wav = load_audio(path)
    assert dominant_frequency(wav.numpy(), 16_000) == pytest.approx(700.0, abs=3.0)


def test_max_seconds_and_offset(tmp_path):
    signal = np.concatenate([tone(300.0, 2.0, 16_000), tone(2000.0, 2.0, 16_000)])
    wav_path = tmp_path / "two_tones.wav"
    sf.write(wav_path, signal, 16_000)
    mp4_path = write_av(tmp_path / "two_tones.mp4", signal, rate=16_000, video_seconds=4.0)
    for path in (wav_path, mp4_path):
        head = load_audio(path, max_seconds=1.0)
        assert head.shape == (16_000,)
        assert dominant_frequency(head.numpy(), 16_000) == pytest.approx(300.0, abs=3.0)
        tail = load_audio(path, max_seconds=1.0, offset_seconds=2.5)
        assert tail.shape == (16_000,)
        assert dominant_frequency(tail.numpy(), 16_000) == pytest.approx(2000.0, abs=3.0)


def test_max_seconds_reads_only_what_it_needs(tmp_path, monkeypatch):
    """A long mp4 is not decoded whole: decoding stops once enough samples are in."""
    import av

    path = write_av(tmp_path / "long.mp4", tone(440.0, 120.0, 16_000), rate=16_000)
    decoded = []
    real_decode = av.packet.Packet.decode

    def counting_decode(self):
        frames = real_decode(self)
        decoded.extend(frame.samples for frame in frames)
        return frames

    monkeypatch.setattr(av.packet.Packet, "decode", counting_decode)
    wav = load_audio(path, max_seconds=2.0)
    assert wav.shape == (32_000,)
    assert 0 < sum(decoded) < 3 * 16_000  # about 2 s of the 120 s were decoded
    decoded.clear()
    wav = load_audio(path, max_seconds=2.0, offset_seconds=100.0)
    assert wav.shape == (32_000,)
    assert 0 < sum(decoded) < 3 * 16_000  # 2 s after a seek, plus its pre-roll


# --------------------------------------------------------------------------- cuts

CUT_SECONDS = 3.0  # length of the generated files
# (offset_seconds, max_seconds): the file's start (zero-padded alike in both reads), offsets
# whose native position falls between two native samples (1.0001 s is 44,104.41 samples at
# 44.1 kHz), a cut ending exactly at the file's end, one running past it, and the rest.
CUTS = [
    (0.0, 0.5),
    (0.3, 0.5),
    (1.0001, 0.25),
    (1.23456, 0.7),
    (2.5, 0.5),
    (2.6, 1.0),
    (2.71, None),
]


def sweep_and_noise(rate: int) -> np.ndarray:
    """``(CUT_SECONDS * rate,)``: a sweep up to near the band edge plus white noise."""
    noise = np.random.default_rng(rate).standard_normal(int(CUT_SECONDS * rate))
    return chirp(50.0, 0.45 * rate, CUT_SECONDS, rate, amplitude=0.4) + 0.1 * noise


def whole_file_cut(full: torch.Tensor, offset: float, seconds: float | None) -> torch.Tensor:
    """The reference: ``full`` ``(T,)`` at 16 kHz, cut on the output grid."""
    first = round(offset * 16_000)
    return full[first:] if seconds is None else full[first : first + round(seconds * 16_000)]


@pytest.mark.parametrize("rate", [44_100, 48_000, 22_050, 8_000, 16_000, 44_101, 16_001])
@pytest.mark.parametrize("suffix", [".wav", ".mov"])
def test_a_cut_is_the_whole_file_resampled_then_cut(tmp_path, rate, suffix):
    """Resampling only the decoded part must not change its edges: each cut equals the
    whole file resampled and then cut, for the soundfile path (.wav) and the PyAV path
    (.mov with 16-bit PCM: lossless, with timestamps counted in samples), and for rates
    resampled phase by phase (44,101 and 16,001 Hz share no factor with 16 kHz: a period is
    a second of the file)."""
    path = tmp_path / f"sweep{suffix}"
    signal = sweep_and_noise(rate)
    if suffix == ".wav":
        sf.write(path, signal, rate, subtype="FLOAT")
    else:
        write_av(path, signal, rate=rate, codec="pcm_s16le")
    full = load_audio(path)
    assert full.shape == (48_000,)
    for offset, seconds in CUTS:
        got = load_audio(path, 16_000, max_seconds=seconds, offset_seconds=offset)
        expected = whole_file_cut(full, offset, seconds)
        assert got.shape == expected.shape, (offset, seconds)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-6, msg=f"{offset}, {seconds}")


@pytest.mark.parametrize("suffix, rate", [(".m4a", 44_100), (".mp4", 48_000)])
def test_an_aac_cut_matches_the_whole_file_decode(tmp_path, suffix, rate):
    """AAC frames overlap their predecessors, so a decode started at a seek is wrong for a
    frame (differences of about 0.4 without the seek pre-roll). After the pre-roll what is
    left is the floating-point decoder's round-off, measured below 2e-5: 1e-4 bounds it,
    far below AAC's own error against the source (about 1e-2 RMS here). The signal is tonal
    and the cuts end before the encoder's padding at the file's end: AAC's noise
    substitution draws on a generator whose state depends on every frame decoded before,
    so noise-like content does not decode the same after a seek."""
    path = write_av(tmp_path / f"sweep{suffix}", chirp(100.0, 4000.0, 3.0, rate), rate=rate)
    full = load_audio(path)
    cuts = [(0.0, 0.5), (0.05, 0.2), (0.3, 0.5), (1.0001, 0.25), (1.23456, 0.7), (2.2, 0.6)]
    for offset, seconds in cuts:
        got = load_audio(path, max_seconds=seconds, offset_seconds=offset)
        expected = whole_file_cut(full, offset, seconds)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-4, msg=f"{offset}, {seconds}")


@pytest.mark.parametrize(
    "rate, margin",
    [
        (44_100, 17),
        (48_000, 19),
        (22_050, 9),
        (8_000, 7),
        (16_000, 0),
        (44_101, 17),  # resampled phase by phase
        (48_001, 19),
        (16_001, 7),
    ],
)
def test_resample_margin_is_the_resampling_filters_reach(rate, margin):
    """An impulse at native sample m reaches output samples j with |j * rate / 16000 - m|
    at most the margin, and at least one sample less (the margin is tight). Impulses at a
    period of native samples cover the filter's phases (a second of the file at the odd
    rates: 97 impulses there)."""
    assert resample_margin(rate) == margin
    if rate == 16_000:
        return
    period = rate // math.gcd(rate, 16_000)  # native samples per repeat of the filter phases
    length = rate // 10
    reach = 0.0
    for m in range(length // 2, length // 2 + (period if period <= 441 else 97)):
        impulse = torch.zeros(length, dtype=torch.float64)  # (T,)
        impulse[m] = 1.0
        taps = torch.nonzero(resample(impulse, rate, 16_000).abs() > 1e-12).flatten()
        reach = max(reach, (taps.double() * rate / 16_000 - m).abs().max().item())
    assert margin - 1 <= reach <= margin


def test_a_seek_that_lands_late_falls_back_to_decoding_from_the_start(tmp_path, monkeypatch):
    """A container that seeks past the cut's first sample cannot place it: the cut is then
    decoded from the start, and still equals the whole file's."""
    import av

    path = write_av(tmp_path / "late.mov", sweep_and_noise(44_100), 44_100, codec="pcm_s16le")
    full = load_audio(path)
    real_seek, real_open = av.container.InputContainer.seek, av.open
    opened = []

    def late_seek(self, offset, *args, **kwargs):  # the stream's time base is 1 / 44100
        return real_seek(self, offset + 44_100, *args, **kwargs)

    def counting_open(*args, **kwargs):
        opened.append(args[0])
        return real_open(*args, **kwargs)

    monkeypatch.setattr(av.container.InputContainer, "seek", late_seek)
    monkeypatch.setattr(av, "open", counting_open)
    got = load_audio(path, max_seconds=0.5, offset_seconds=1.0)
    assert len(opened) == 2  # the seek, then the decode from the start
    torch.testing.assert_close(got, full[16_000:24_000], rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- any rate

ORDINARY_RATES = [8_000, 11_025, 12_000, 22_050, 24_000, 32_000, 44_100, 48_000, 96_000, 384_000]
ODD_RATES = [16_001, 44_101, 48_001]  # no factor in common with 16 kHz


def band_limited_reference(x: np.ndarray, orig: int, new: int) -> np.ndarray:
    """The resampler's defining formula, evaluated densely in float64 NumPy: output ``j`` is
    ``sum_i x[i] h(i / orig - j / new)``, ``h(s) = c / orig * sinc(c s) * cos^2(pi c s / 12)``
    for ``|c s| < 6`` (0 beyond), ``c = 0.99 * min(orig, new)`` Hz the cutoff. ``(T,) ->
    (ceil(T * new / orig),)``."""
    cutoff = 0.99 * min(orig, new)
    out = np.arange(math.ceil(len(x) * new / orig))
    t = (np.arange(len(x))[None, :] / orig - out[:, None] / new) * cutoff  # (T', T)
    window = np.where(np.abs(t) < 6, np.cos(np.pi * t / 12) ** 2, 0.0)
    return (np.sinc(t) * window * cutoff / orig) @ x


@pytest.mark.parametrize("rate", ORDINARY_RATES)
def test_ordinary_rates_keep_torchaudios_resampler_bit_for_bit(rate):
    import torchaudio.functional as AF

    x = torch.from_numpy(sweep_and_noise(rate)[: rate // 2]).float()  # (T,)
    expected = AF.resample(x, rate, 16_000, lowpass_filter_width=6, rolloff=0.99)
    assert audio._bank_size(rate, 16_000) <= audio.RESAMPLE_BANK_LIMIT
    assert torch.equal(resample(x, rate, 16_000), expected)


@pytest.mark.parametrize("rate", [8_000, 11_025, 22_050, 44_100, 48_000, 96_000])
def test_resampling_by_phase_is_torchaudios_filter(rate):
    """The per-phase path, forced on the usual rates, gives torchaudio's output: to 1e-13 in
    float64, and in float32 within torchaudio's own round-off (its float32 bank is up to 4e-5
    from the float64 filter at 11.025 kHz, where the per-phase path stays within 1e-6)."""
    import torchaudio.functional as AF

    x = torch.from_numpy(sweep_and_noise(rate)[: rate // 2])  # (T,) float64
    exact = AF.resample(x, rate, 16_000, lowpass_filter_width=6, rolloff=0.99)
    by_phase = audio._resample_by_phase(x, rate, 16_000)
    torch.testing.assert_close(by_phase, exact, rtol=0, atol=1e-13)
    by_phase32 = audio._resample_by_phase(x.float(), rate, 16_000)
    torch.testing.assert_close(by_phase32, exact.float(), rtol=0, atol=1e-6)
    bank32 = AF.resample(x.float(), rate, 16_000, lowpass_filter_width=6, rolloff=0.99)
    torch.testing.assert_close(by_phase32, bank32, rtol=0, atol=1e-4)


@pytest.mark.parametrize("rate", [*ODD_RATES, 1_001, 383_999])
def test_odd_rates_follow_the_band_limited_interpolation_formula(rate):
    """Rates whose filter bank would be too large (48,001 Hz: 769 million weights) are
    resampled phase by phase; the result is the defining formula's, evaluated densely, with
    the batch dimensions kept."""
    assert audio._bank_size(rate, 16_000) > audio.RESAMPLE_BANK_LIMIT
    length = 3_000 if rate > 16_000 else 300  # the reference holds (T', T) weights
    x = np.random.default_rng(rate).uniform(-1, 1, length)
    expected = band_limited_reference(x, rate, 16_000)
    got = resample(torch.from_numpy(x), rate, 16_000)
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-12)
    batch = torch.from_numpy(np.stack([x, -x, 0.5 * x])).float()[None]  # (1, 3, T)
    got = resample(batch, rate, 16_000)
    assert got.shape == (1, 3, len(expected)) and got.dtype == torch.float32
    np.testing.assert_allclose(got[0, 1].numpy(), -expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("rate", ODD_RATES)
def test_odd_rates_keep_tones_and_suppress_aliases(rate):
    """A tone in the pass band comes out at its frequency and amplitude, one above the new
    Nyquist frequency (8 kHz) is suppressed, and the output agrees with SciPy's polyphase
    resampler (a Kaiser-windowed filter of its own) on a mix of tones: the differences are
    the two filters' pass-band ripples."""
    from scipy.signal import resample_poly

    inner = slice(100, -100)  # away from the zero-padded ends
    for freq in (440.0, 3_000.0):
        got = resample(torch.from_numpy(tone(freq, 1.0, rate)), rate, 16_000).numpy()
        assert got.shape == (16_000,)
        np.testing.assert_allclose(got[inner], tone(freq, 1.0, 16_000)[inner], atol=1e-3)
        assert dominant_frequency(got, 16_000) == pytest.approx(freq, abs=1.0)
    if rate > 24_000:  # 16,001 Hz holds nothing above 8 kHz
        alias = resample(torch.from_numpy(tone(12_000.0, 1.0, rate)), rate, 16_000).numpy()
        assert np.abs(alias[inner]).max() < 2e-3  # 0.5 in, under -48 dB out (it'd be 4 kHz)
    t = np.arange(rate) / rate
    mix = sum(0.1 * np.sin(2 * np.pi * f * t + f) for f in (150, 700, 1_900, 3_300, 5_100))
    got = resample(torch.from_numpy(mix), rate, 16_000).numpy()
    np.testing.assert_allclose(got[inner], resample_poly(mix, 16_000, rate)[inner], atol=2e-3)


def test_odd_rates_resample_in_bounded_memory():
    """A fresh process resampling 3 s at each odd rate (torchaudio's banks: 256, 706 and 769
    million weights, 4.8 to 13 GB at their peak in s2f-infer) gains little resident memory
    over the same at 48 kHz: the per-phase path holds a table of 16,000 x (2 * margin + 1)
    weights and products of about a million elements at a time."""
    script = f"""
import resource
import torch
from speech2face.audio import resample

def peak_kib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

resample(torch.rand(3 * 48_000) - 0.5, 48_000, 16_000)
before = peak_kib()
for rate in {ODD_RATES}:
    assert resample(torch.rand(3 * rate) - 0.5, rate, 16_000).shape == (48_000,)
print(peak_kib() - before)
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) < 100 * 1024, result.stdout  # KiB: under 100 MiB more


@pytest.mark.parametrize("rate", [999, 384_001, 1_000_003])
@pytest.mark.parametrize("suffix", [".wav", ".audio"])
def test_rates_outside_the_range_are_refused_in_one_line(tmp_path, monkeypatch, rate, suffix):
    """libsndfile (.wav) and FFmpeg (any other name) read the header's rate; the file is
    refused before any sample is decoded or resampled."""
    from tests.media import write_pcm16_wav

    path = write_pcm16_wav(tmp_path / f"odd{suffix}", tone(440.0, 4_000 / rate, rate), rate)
    assert path.stat().st_size == 8_044

    def no_resampling(*args):
        raise AssertionError("resampled")

    monkeypatch.setattr(audio, "resample", no_resampling)
    with pytest.raises(AudioError) as info:
        load_audio(path)
    message = str(info.value)
    assert message == f"{path}: sample rate {rate} Hz is outside 1000 to 384000 Hz", message
    assert (audio.MIN_SAMPLE_RATE, audio.MAX_SAMPLE_RATE) == (1_000, 384_000)


def test_the_range_bounds_are_read(tmp_path):
    for rate, samples in ((1_000, 500), (384_000, 38_400)):  # half a second, 0.1 s
        path = tmp_path / f"edge{rate}.wav"
        sf.write(path, tone(200.0, samples / rate, rate), rate, subtype="PCM_16")
        wav = load_audio(path)
        assert wav.shape == (samples * 16_000 // rate,)
        assert dominant_frequency(wav.numpy(), 16_000) == pytest.approx(200.0, abs=5.0)
    with pytest.raises(AudioError, match="sample_rate must be an integer from 1000 to 384000"):
        load_audio(path, sample_rate=384_001)


# --------------------------------------------------------------------------- where sample 0 is

START_RATE = 16_000


def start_signal() -> np.ndarray:
    """``(32_000,)``: a 2 s sweep from 100 Hz to 7 kHz at 16 kHz. Its autocorrelation has one
    peak a sample wide, so a decoded copy's lag is unambiguous."""
    return chirp(100.0, 7000.0, 2.0, START_RATE, amplitude=0.4)


def _libsndfile(subtype):
    return lambda path, x: sf.write(path, x, START_RATE, subtype=subtype)


def _pyav(codec, **kwargs):
    return lambda path, x: write_av(path, x, START_RATE, codec=codec, **kwargs)


def _ffmpeg51_webm(path, x):
    """WebM/Opus as FFmpeg 5.1 writes it from 16 kHz input: its CodecDelay says 104 samples
    at 48 kHz (2,166,667 ns), the OpusHead pre-skip 312."""
    return set_matroska_codec_delay(write_av(path, x, START_RATE, codec="libopus"), 2_166_667)


# One signal written in every format load_audio reads: name -> (file name, writer).
START_FORMATS = {
    "wav": ("a.wav", _libsndfile("PCM_16")),
    "flac": ("a.flac", _libsndfile("PCM_16")),
    "ogg/vorbis (libsndfile)": ("a.ogg", _libsndfile("VORBIS")),
    "ogg/opus (libsndfile)": ("a.ogg", _libsndfile("OPUS")),
    "mp3 (libsndfile, LAME header)": ("a.mp3", _libsndfile("MPEG_LAYER_III")),
    "mp3 (FFmpeg, Info header)": ("a.mp3", _pyav("libmp3lame")),
    "opus (FFmpeg, Ogg)": ("a.opus", _pyav("libopus")),
    "m4a/aac": ("a.m4a", _pyav("aac")),
    "mp4/aac with video": ("a.mp4", _pyav("aac", video_seconds=2.0)),
    "mov/aac": ("a.mov", _pyav("aac")),
    "mp4/opus": ("a.mp4", _pyav("libopus")),
    "mkv/aac": ("a.mkv", _pyav("aac")),
    "mkv/opus": ("a.mkv", _pyav("libopus")),
    "mkv/mp3": ("a.mkv", _pyav("libmp3lame")),
    "webm/opus with video": ("a.webm", _pyav("libopus", video_seconds=2.0)),
    "webm/vorbis": (
        "a.webm",
        lambda path, x: write_av(
            path, np.stack([x, x]), START_RATE, codec="vorbis", codec_options={"strict": "-2"}
        ),
    ),
    "webm/opus, CodecDelay from FFmpeg 5.1": ("a.webm", _ffmpeg51_webm),
}


@pytest.mark.parametrize("name", list(START_FORMATS))
def test_every_format_starts_at_sample_zero(tmp_path, name):
    """The same sweep decodes in place from every format: the whole file, and a cut 1 s in
    (reached by a seek), lag the original by less than half a sample. Matroska's millisecond
    timestamps place the seek to the sample by snapping to the codec's frame grid."""
    filename, write = START_FORMATS[name]
    signal = start_signal()
    path = tmp_path / filename
    write(path, signal)
    assert abs(lag_samples(load_audio(path).numpy(), signal)) < 0.5
    cut = load_audio(path, max_seconds=0.5, offset_seconds=1.0).numpy()
    assert abs(lag_samples(cut, signal[16_000:24_000], max_lag=2000)) < 0.5


def test_the_opus_pre_skip_wins_over_a_shorter_matroska_codec_delay(tmp_path):
    """FFmpeg follows the CodecDelay of a WebM from FFmpeg 5.1 and keeps 208 of the OpusHead's
    312 pre-skip samples (at 48 kHz): its own decode starts 69 samples late at 16 kHz."""
    import av

    signal = start_signal()
    path = _ffmpeg51_webm(tmp_path / "a.webm", signal)
    with av.open(str(path)) as container:
        frames = [frame.to_ndarray().mean(axis=0) for frame in container.decode(audio=0)]
    ffmpeg = resample(torch.from_numpy(np.concatenate(frames)), 48_000, START_RATE).numpy()
    assert lag_samples(ffmpeg, signal) == pytest.approx(208 / 3, abs=0.5)
    assert abs(lag_samples(load_audio(path).numpy(), signal)) < 0.5


def test_an_mp3_without_a_gapless_header_keeps_its_encoder_delay(tmp_path):
    """Nothing else in an mp3 says where the signal starts. Without the LAME/Xing/Info header
    (libsndfile and FFmpeg write one, sox does not) it decodes 1,105 samples late: LAME's
    576-sample encoder delay plus the decoder's 529. load_audio's docstring says so."""
    signal = start_signal()
    plain = tmp_path / "plain.mp3"
    write_av(plain, signal, START_RATE, codec="libmp3lame", container_options={"write_xing": "0"})
    head = plain.read_bytes()[:2000]
    assert b"Xing" not in head and b"Info" not in head
    assert lag_samples(load_audio(plain).numpy(), signal) == pytest.approx(1105, abs=0.5)


# --------------------------------------------------------------------------- decoder chatter


def s2f_spectrogram(*args, cwd):
    """Run the installed ``s2f-spectrogram`` console script."""
    command = Path(sys.executable).with_name("s2f-spectrogram")
    return subprocess.run(
        [str(command), *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_a_text_file_named_mp3_is_not_audio_and_nothing_else_is_printed(tmp_path, capfd):
    fake = tmp_path / "fake.mp3"
    fake.write_text("this is not audio\n" * 20)
    with pytest.raises(AudioError) as info:
        load_audio(fake)
    assert str(info.value) == (
        f"{fake}: not an audio file (its contents are in no format libsndfile or FFmpeg reads)"
    )
    assert capfd.readouterr().err == ""  # libmpg123 writes to file descriptor 2


def test_a_damaged_mp3_decodes_without_decoder_notes(tmp_path, capfd):
    """libmpg123 prints notes on fd 2 for junk inside an mp3 and after seeks into one."""
    path = tmp_path / "damaged.mp3"
    sf.write(path, start_signal(), START_RATE, subtype="MPEG_LAYER_III")
    data = path.read_bytes()
    path.write_bytes(data[:3000] + b"not mp3 data " * 20 + data[3000:])
    assert load_audio(path).shape[0] > 30_000
    assert load_audio(path, max_seconds=0.5, offset_seconds=1.0).shape == (8000,)
    assert capfd.readouterr().err == ""
    print("stderr works again", file=sys.stderr)  # fd 2 is restored
    os.write(2, b"and so does fd 2\n")
    assert capfd.readouterr().err == "stderr works again\nand so does fd 2\n"


@pytest.mark.slow
def test_spectrogram_command_says_in_one_line_that_a_fake_mp3_is_not_audio(tmp_path):
    (tmp_path / "fake.mp3").write_text("this is not audio\n" * 20)
    result = s2f_spectrogram("input=fake.mp3", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "s2f-spectrogram: error: fake.mp3: not an audio file (its contents are in no format"
        " libsndfile or FFmpeg reads)"
    ]
    assert not (tmp_path / "fake.spec.npy").exists()


# --------------------------------------------------------------------------- short audio


@pytest.mark.parametrize("seconds", [0.044, 0.9])
def test_tiling_less_than_a_second_warns(seconds):
    wav = torch.from_numpy(tone(200.0, seconds, 16_000)).float()
    with pytest.warns(ShortAudioWarning, match=r"only (44|900) ms of audio, tiled to 6 s") as w:
        clip = fit_to_length(wav)
    assert clip.shape == (N_SAMPLES,) and len(w) == 1
    assert w[0].filename == __file__  # points at the caller


def test_no_warning_from_a_second_or_more_or_without_tiling():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit_to_length(torch.zeros(round(MIN_VOICE_SECONDS * 16_000)))
        fit_to_length(torch.zeros(8000), 4000)  # cut, not tiled


def test_one_line_warnings_formats_only_its_categories(capsys):
    shown = warnings.showwarning
    with (
        pytest.warns(UserWarning, match="something else") as other,
        one_line_warnings("s2f-test"),
    ):
        warnings.warn("only 44 ms of\naudio", ShortAudioWarning, stacklevel=1)
        warnings.warn("something else", UserWarning, stacklevel=1)
    assert capsys.readouterr().err == "s2f-test: warning: only 44 ms of audio\n"
    assert [w.category for w in other] == [UserWarning]  # shown the usual way
    assert warnings.showwarning is shown  # restored


@pytest.mark.slow
def test_spectrogram_command_warns_in_one_line_about_short_audio(tmp_path):
    sf.write(tmp_path / "short.wav", tone(200.0, 0.9, 16_000), 16_000)
    result = s2f_spectrogram("input=short.wav", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert np.load(tmp_path / "short.spec.npy").shape == (2, 598, 257)
    assert result.stderr.splitlines() == [
        "s2f-spectrogram: warning: only 900 ms of audio, tiled to 6 s; under 1 s there is too"
        " little voice for a clip"
    ]


def _bad_files(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio\n" * 20)
    text_mp4 = tmp_path / "notes.mp4"
    text_mp4.write_text("neither is this\n" * 20)
    good = tmp_path / "good.wav"
    sf.write(good, tone(440.0, 1.0, 16_000), 16_000)
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(good.read_bytes()[:30])
    nan = tmp_path / "nan.wav"
    data = tone(440.0, 1.0, 16_000).astype(np.float32)
    data[100] = np.nan
    sf.write(nan, data, 16_000, subtype="FLOAT")
    inf = tmp_path / "inf.wav"
    data[100] = np.inf
    sf.write(inf, data, 16_000, subtype="FLOAT")
    zero = tmp_path / "zero.wav"
    sf.write(zero, np.zeros(0, dtype=np.float32), 16_000)
    video_only = write_av(tmp_path / "video_only.mp4", None, video_seconds=1.0)
    return {
        "missing": tmp_path / "missing.wav",
        "directory": tmp_path,
        "empty": empty,
        "not audio (.wav)": text,
        "not audio (.mp4)": text_mp4,
        "truncated header": truncated,
        "NaN samples": nan,
        "infinite samples": inf,
        "zero-length audio": zero,
        "no audio stream": video_only,
    }


def test_every_bad_input_raises_a_one_line_audio_error(tmp_path):
    for label, path in _bad_files(tmp_path).items():
        with pytest.raises(AudioError) as info:
            load_audio(path)
        message = str(info.value)
        assert "\n" not in message, label
        assert str(path) in message, label
        assert isinstance(info.value, ValueError)


def test_bad_arguments(tmp_path):
    path = tmp_path / "ok.wav"
    sf.write(path, tone(440.0, 1.0, 16_000), 16_000)
    with pytest.raises(AudioError, match="max_seconds"):
        load_audio(path, max_seconds=0)
    for bad in (float("nan"), float("inf"), -1.0):
        with pytest.raises(AudioError, match="max_seconds"):
            load_audio(path, max_seconds=bad)
        with pytest.raises(AudioError, match="offset_seconds"):
            load_audio(path, offset_seconds=bad if bad != float("inf") else float("nan"))
    with pytest.raises(AudioError, match="sample_rate"):
        load_audio(path, sample_rate=0)
    with pytest.raises(AudioError, match="past the end"):
        load_audio(path, offset_seconds=5.0)
    with pytest.raises(AudioError, match="less than one sample"):
        load_audio(path, max_seconds=1e-5)
    for rate in (44_100, 8_000):  # a cut starting just past the end reads native samples
        resampled = tmp_path / f"ok{rate}.wav"  # before it (for the resampler), yet fails
        sf.write(resampled, tone(440.0, 1.0, rate), rate)
        with pytest.raises(AudioError, match="past the end"):
            load_audio(resampled, offset_seconds=1.0001)
        assert load_audio(resampled, offset_seconds=0.999).shape == (16,)


def test_module_exports_are_documented():
    for name in audio.__all__:
        assert hasattr(audio, name), name

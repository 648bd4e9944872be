"""The recording channel, each stage against an independent reference."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import torch
import torchaudio

from speech2face.augment import RecordingChannel
from speech2face.errors import ConfigError

RATE = 16_000
OFF = dict(p_reverb=0.0, p_noise=0.0, p_band=0.0, p_codec=0.0, gain_db=(0.0, 0.0))


def voice(n: int = 4, seconds: float = 1.0, seed: int = 0) -> torch.Tensor:  # (n, T)
    """Harmonic tones with a slow envelope, peak 0.5."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * RATE)) / RATE
    f0 = 100 + 150 * torch.rand(n, 1, generator=g)
    wav = sum(torch.sin(2 * torch.pi * k * f0 * t) / k for k in range(1, 8))
    wav = wav * (0.6 + 0.4 * torch.sin(2 * torch.pi * 3 * t))
    return 0.5 * wav / wav.abs().amax(dim=1, keepdim=True)


def test_all_stages_off_is_the_identity():
    wav = voice()
    np.testing.assert_allclose(RecordingChannel(**OFF)(wav), wav, atol=1e-6)


def test_reverb_is_a_convolution_with_its_impulse_response():
    """Stage by stage through the same draws: the reverberant clip equals SciPy's
    convolution of the clip with the impulse response that the stage built."""
    channel = RecordingChannel(**{**OFF, "p_reverb": 1.0})
    wav = voice(2)
    captured = {}
    original = torch.fft.irfft

    def spy(spectrum, n=None):
        out = original(spectrum, n=n)
        captured.setdefault("out", out)
        return out

    torch.fft.irfft = spy
    try:
        out = channel(wav, torch.Generator().manual_seed(1))
    finally:
        torch.fft.irfft = original
    # rebuild the impulse response from the same draws, independently of the stage's FFT
    g = torch.Generator().manual_seed(1)
    chosen = torch.rand(2, generator=g) < 1.0
    rt60 = 0.15 + (0.8 - 0.15) * torch.rand(2, generator=g)
    wet = 10 ** ((-12 + 12 * torch.rand(2, generator=g)) / 20)
    taps = RATE  # 1 s cap, the clip's length here
    t = torch.arange(taps) / RATE
    tail = torch.randn(2, taps, generator=g) * torch.exp(-np.log(10) * 3 * t / rt60[:, None])
    tail[:, 0] = 0
    tail = tail / tail.norm(dim=1, keepdim=True) * wet[:, None]
    tail[:, 0] = 1
    assert chosen.all()
    for i in range(2):
        ref = scipy.signal.fftconvolve(wav[i].double().numpy(), tail[i].double().numpy())
        ref = ref[: wav.shape[1]]
        ref *= np.sqrt((wav[i].double() ** 2).mean().item() / (ref**2).mean())
        np.testing.assert_allclose(out[i].numpy(), ref, atol=2e-4)


def test_noise_has_the_drawn_snr():
    channel = RecordingChannel(**{**OFF, "p_noise": 1.0, "snr_db": (10.0, 10.0)})
    wav = voice(8)
    noisy = channel(wav, torch.Generator().manual_seed(2))
    noise = noisy - wav
    snr = 10 * torch.log10(wav.pow(2).mean(1) / noise.pow(2).mean(1))
    np.testing.assert_allclose(snr.numpy(), 10.0, atol=0.01)


def test_band_limits_match_scipy_welch():
    channel = RecordingChannel(
        **{**OFF, "p_band": 1.0, "low_hz": (300.0, 300.0), "high_hz": (3400.0, 3400.0)}
    )
    white = torch.randn(1, 4 * RATE, generator=torch.Generator().manual_seed(3)) * 0.1
    out = channel(white)
    freqs, before = scipy.signal.welch(white[0].numpy(), fs=RATE, nperseg=1024)
    _, after = scipy.signal.welch(out[0].numpy(), fs=RATE, nperseg=1024)
    gain_db = 10 * np.log10(after / before)
    assert abs(np.median(gain_db[(freqs > 800) & (freqs < 2000)])) < 0.5  # the pass band
    assert np.median(gain_db[(freqs > 5500) & (freqs < 7500)]) < -20  # above 3.4 kHz
    assert np.median(gain_db[freqs < 80]) < -20  # below 300 Hz


@pytest.mark.parametrize("bits", [6, 8])
def test_codec_is_torchaudios_mu_law(bits):
    channel = RecordingChannel(**{**OFF, "p_codec": 1.0, "codec_bits": (bits, bits)})
    wav = voice(3)
    levels = 2**bits
    reference = torchaudio.functional.mu_law_decoding(
        torchaudio.functional.mu_law_encoding(wav, levels), levels
    )
    np.testing.assert_allclose(channel(wav).numpy(), reference.numpy(), atol=1e-5)


def test_gain_and_clipping():
    channel = RecordingChannel(**{**OFF, "gain_db": (12.0, 12.0)})
    out = channel(voice())
    assert out.abs().max() == 1.0  # 0.5 * 4 clipped
    quiet = RecordingChannel(**{**OFF, "gain_db": (-20.0, -20.0)})(voice())
    np.testing.assert_allclose(quiet.abs().amax(1).numpy(), 0.05, rtol=1e-4)


def test_reproducible_and_each_clip_its_own():
    channel = RecordingChannel()
    wav = voice(16)
    a = channel(wav, torch.Generator().manual_seed(5))
    b = channel(wav, torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b)
    changed = [(a[i] - wav[i]).abs().max() > 1e-3 for i in range(16)]
    assert 0 < sum(changed) <= 16 and a.shape == wav.shape and torch.isfinite(a).all()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("p_noise", 1.5, "probability"),
        ("snr_db", (30.0, 5.0), "low <= high"),
        ("high_hz", (200.0, 300.0), "above"),
        ("codec_bits", (1.0, 8.0), "codec_bits"),
    ],
)
def test_bad_settings_are_config_errors(field, value, message):
    with pytest.raises(ConfigError, match=message):
        RecordingChannel(**{field: value})

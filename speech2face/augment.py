"""A recording channel: what real recordings do to speech, applied to clean waveforms.

:class:`RecordingChannel` draws, for every clip of a batch, a room (reverberation from an
exponentially decaying noise impulse response), background noise of a random colour at a
random signal-to-noise ratio, a microphone's or a telephone's band limits, a level (with
clipping when it is too loud) and a lossy quantiser (mu-law companding at a few bits, the
way telephony and cheap codecs coarsen speech). Each stage happens with its own probability,
so some clips stay clean. It runs in torch on whatever device the batch is on.

The training config group ``augment=`` applies it to the voices of ``task=voice`` (before the
spectrogram, training steps only): ``augment=channel`` with the defaults below, or
``augment=none`` (the default, and ``experiment=paper``'s). The synthetic corpus gives each
speaker's video one fixed channel of its own as well (:func:`speech2face.data.synthetic`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from speech2face.audio import SAMPLE_RATE
from speech2face.errors import ConfigError

__all__ = ["RecordingChannel", "no_augment"]

RT60_DECAY_DB = 60.0  # reverberation time: the time the room's echo takes to fall 60 dB
MAX_RIR_SECONDS = 1.0  # impulse responses are cut here
BAND_EDGE_OCTAVES = 0.25  # width of the band limits' roll-off, octaves
EPS = 1e-8


def no_augment() -> None:
    """``augment=none``: the voices as they are."""
    return None


def _range(name: str, pair: tuple[float, float] | list[float], low: float = -math.inf):
    values = tuple(float(v) for v in pair)
    if len(values) != 2 or not low <= values[0] <= values[1]:
        raise ConfigError(f"augment.{name} must be [low, high] with low <= high, got {pair}")
    return values


def _probability(name: str, value: float) -> float:
    if not 0.0 <= float(value) <= 1.0:
        raise ConfigError(f"augment.{name} must be a probability in [0, 1], got {value}")
    return float(value)


@dataclass
class RecordingChannel:
    """Random recording conditions for ``(B, T)`` waveforms in [-1, 1].

    Args:
        p_reverb: share of clips that get a room; ``rt60_s`` its reverberation time range and
            ``wet_db`` the reverberant part's level against the direct sound.
        p_noise: share of clips with background noise at ``snr_db`` (signal-to-noise ratio
            against the clip's mean power); its spectrum falls as ``f ** -colour`` with
            ``colour`` drawn from ``noise_colour`` (0 white, 1 pink, 2 brown).
        p_band: share of clips band-limited to ``[low_hz, high_hz]`` edges drawn per clip.
        gain_db: level change drawn for every clip; the result is clipped to [-1, 1].
        p_codec: share of clips quantised by mu-law companding at ``codec_bits`` bits.
        sample_rate: the waveforms' rate.
    """

    p_reverb: float = 0.5
    rt60_s: tuple[float, float] = (0.15, 0.8)
    wet_db: tuple[float, float] = (-12.0, 0.0)
    p_noise: float = 0.6
    snr_db: tuple[float, float] = (5.0, 35.0)
    noise_colour: tuple[float, float] = (0.0, 2.0)
    p_band: float = 0.5
    low_hz: tuple[float, float] = (50.0, 300.0)
    high_hz: tuple[float, float] = (3_400.0, 8_000.0)
    gain_db: tuple[float, float] = (-20.0, 6.0)
    p_codec: float = 0.3
    codec_bits: tuple[float, float] = (6.0, 8.0)
    sample_rate: int = SAMPLE_RATE

    def __post_init__(self) -> None:
        for name in ("p_reverb", "p_noise", "p_band", "p_codec"):
            setattr(self, name, _probability(name, getattr(self, name)))
        self.rt60_s = _range("rt60_s", self.rt60_s, 0.01)
        self.wet_db = _range("wet_db", self.wet_db)
        self.snr_db = _range("snr_db", self.snr_db)
        self.noise_colour = _range("noise_colour", self.noise_colour, 0.0)
        self.low_hz = _range("low_hz", self.low_hz, 0.0)
        self.high_hz = _range("high_hz", self.high_hz, 0.0)
        if self.high_hz[0] <= self.low_hz[1]:
            raise ConfigError("augment.high_hz must lie above augment.low_hz")
        self.gain_db = _range("gain_db", self.gain_db)
        self.codec_bits = _range("codec_bits", self.codec_bits, 2.0)
        if int(self.sample_rate) < 1:
            raise ConfigError(f"augment.sample_rate must be positive, got {self.sample_rate}")

    def _uniform(self, bounds, n: int, generator, device) -> Tensor:  # -> (n,) float32
        low, high = bounds
        return low + (high - low) * torch.rand(n, generator=generator).to(device)

    def _chosen(self, p: float, n: int, generator, device) -> Tensor:  # -> (n,) bool
        return (torch.rand(n, generator=generator) < p).to(device)

    @torch.no_grad()
    def __call__(self, wav: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``wav``: ``(B, T)`` float; returns ``(B, T)`` float32 through a random channel each.

        ``generator`` (a CPU generator) makes the draws reproducible.
        """
        if wav.dim() != 2:
            raise ValueError(f"RecordingChannel needs (B, T) waveforms, got {tuple(wav.shape)}")
        x = wav.float()
        n, length = x.shape
        if n == 0 or length == 0:
            return x
        device = x.device
        x = self._reverb(x, generator)
        x = self._noise(x, generator)
        x = self._band(x, generator)
        gain = 10.0 ** (self._uniform(self.gain_db, n, generator, device) / 20.0)
        x = (x * gain[:, None]).clamp(-1.0, 1.0)
        return self._codec(x, generator)

    def _reverb(self, x: Tensor, generator) -> Tensor:
        n, length = x.shape
        chosen = self._chosen(self.p_reverb, n, generator, x.device)
        if not bool(chosen.any()):
            return x
        rt60 = self._uniform(self.rt60_s, n, generator, x.device)
        wet = 10.0 ** (self._uniform(self.wet_db, n, generator, x.device) / 20.0)
        taps = min(int(MAX_RIR_SECONDS * self.sample_rate), length)
        t = torch.arange(taps, device=x.device, dtype=torch.float32) / self.sample_rate
        decay = torch.exp(-math.log(10.0) * RT60_DECAY_DB / 20.0 * t[None, :] / rt60[:, None])
        tail = torch.randn(n, taps, generator=generator).to(x.device) * decay
        tail[:, 0] = 0.0
        tail = tail / tail.norm(dim=1, keepdim=True).clamp_min(EPS) * wet[:, None]
        tail[:, 0] = 1.0  # the direct sound
        size = length + taps
        spectrum = torch.fft.rfft(x, n=size) * torch.fft.rfft(tail, n=size)
        wet_x = torch.fft.irfft(spectrum, n=size)[:, :length]
        # keep the clip's loudness: reverberation adds energy, the level stage sets it
        wet_x = (
            wet_x
            * (
                x.pow(2).mean(1, keepdim=True) / wet_x.pow(2).mean(1, keepdim=True).clamp_min(EPS)
            ).sqrt()
        )
        return torch.where(chosen[:, None], wet_x, x)

    def _noise(self, x: Tensor, generator) -> Tensor:
        n, length = x.shape
        chosen = self._chosen(self.p_noise, n, generator, x.device)
        if not bool(chosen.any()):
            return x
        snr = self._uniform(self.snr_db, n, generator, x.device)
        colour = self._uniform(self.noise_colour, n, generator, x.device)
        white = torch.randn(n, length, generator=generator).to(x.device)
        freqs = torch.fft.rfftfreq(length, d=1.0 / self.sample_rate).to(x.device)
        shape = freqs.clamp_min(20.0)[None, :] ** (-colour[:, None] / 2.0)
        noise = torch.fft.irfft(torch.fft.rfft(white) * shape, n=length)
        power = x.pow(2).mean(1, keepdim=True)
        noise_power = noise.pow(2).mean(1, keepdim=True).clamp_min(EPS)
        scale = (power / noise_power / 10.0 ** (snr[:, None] / 10.0)).sqrt()
        return torch.where(chosen[:, None], x + noise * scale, x)

    def _band(self, x: Tensor, generator) -> Tensor:
        n, length = x.shape
        chosen = self._chosen(self.p_band, n, generator, x.device)
        if not bool(chosen.any()):
            return x
        low = self._uniform(self.low_hz, n, generator, x.device)
        high = self._uniform(self.high_hz, n, generator, x.device)
        freqs = torch.fft.rfftfreq(length, d=1.0 / self.sample_rate).to(x.device)
        octaves = torch.log2(freqs.clamp_min(1.0))[None, :]
        width = BAND_EDGE_OCTAVES
        gain = torch.sigmoid((octaves - torch.log2(low)[:, None]) / width * 4.0)
        gain = gain * torch.sigmoid((torch.log2(high)[:, None] - octaves) / width * 4.0)
        limited = torch.fft.irfft(torch.fft.rfft(x) * gain, n=length)
        return torch.where(chosen[:, None], limited, x)

    def _codec(self, x: Tensor, generator) -> Tensor:
        n = x.shape[0]
        chosen = self._chosen(self.p_codec, n, generator, x.device)
        if not bool(chosen.any()):
            return x
        bits = self._uniform(self.codec_bits, n, generator, x.device).round()
        mu = (2.0**bits - 1.0)[:, None]  # mu-law with 2 ** bits levels, mu = levels - 1
        companded = torch.sign(x) * torch.log1p(mu * x.abs()) / torch.log1p(mu)
        codes = torch.floor((companded + 1.0) / 2.0 * mu + 0.5)  # 0 .. mu
        restored = codes / mu * 2.0 - 1.0
        decoded = torch.sign(restored) * (torch.pow(1.0 + mu, restored.abs()) - 1.0) / mu
        return torch.where(chosen[:, None], decoded, x)

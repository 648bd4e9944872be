"""Band-limited resampling: torchaudio's windowed-sinc filter, and the same filter evaluated
at each output sample's phase where torchaudio's filter bank would be too large.

:func:`speech2face.audio.load_audio` resamples every file through :func:`resample`; its
cuts rely on :func:`filter_margin`, the filter's half-width.
"""

from __future__ import annotations

import math

import torch

# torchaudio's windowed-sinc resampler (torchaudio.functional.resample's defaults, passed
# explicitly): an output sample at native position p is a Hann-windowed sinc of the native
# samples i with |i - p| < ZERO_CROSSINGS * native / (ROLLOFF * min(native, output)), the
# filter's half-width in native samples. A cut therefore reads
# ceil(6 * native / (0.99 * min(native, 16000))) native samples more at each end than it
# keeps: 17 at 44.1 kHz (6 * 44100 / 15840 = 16.7), 19 at 48 kHz (18.2), 9 at 22.05 kHz (8.35),
# 7 at 8 kHz (6 * 8000 / 7920 = 6.06); see filter_margin().
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

__all__ = [
    "RESAMPLE_BANK_LIMIT",
    "RESAMPLE_ROLLOFF",
    "RESAMPLE_ZERO_CROSSINGS",
    "filter_margin",
    "resample",
]


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
    return new_rate // g * (2 * filter_margin(orig_rate, new_rate) + orig_rate // g)


# Elements of the (..., J, taps) products _resample_by_phase forms at a time: 4 MB in float32.
_RESAMPLE_CHUNK = 1 << 20


def _resample_by_phase(wav: torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    """:func:`resample`'s filter at each output sample's phase: ``(..., T) -> (..., T')``.

    Output sample ``j`` lies at input position ``x = j * down / up`` (``down / up`` the
    rates' reduced ratio), ``floor(x) + r / up``; it weighs the ``2 * margin + 1`` input
    samples ``floor(x) - margin ... floor(x) + margin`` (:func:`filter_margin`) by
    :func:`_sinc_weights` of its phase ``r``. Once the output holds every phase, their
    weights are tabled (``up x (2 * margin + 1)``: 16,000 x 39 for 48,001 Hz to 16 kHz);
    shorter outputs evaluate their own. Outputs are formed ``_RESAMPLE_CHUNK`` products at a
    time. The phases, and so the weights, repeat every ``up`` outputs (``down`` inputs): a
    read starting ``k * down`` input samples later gives the same values, as
    :func:`speech2face.audio.load_audio`'s cuts need.
    """
    g = math.gcd(orig_rate, new_rate)
    down, up = orig_rate // g, new_rate // g
    margin = filter_margin(orig_rate, new_rate)
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


def filter_margin(orig_rate: int, new_rate: int) -> int:
    """Input samples on each side of an output sample's position that :func:`resample`
    weighs: ``ceil(6 * orig_rate / (0.99 * min(orig_rate, new_rate)))`` (17 for 44.1 kHz to
    16 kHz, 19 for 48 kHz, 9 for 22.05 kHz, 7 for 8 kHz), 0 for equal rates."""
    if orig_rate == new_rate:
        return 0
    lower = min(orig_rate, new_rate)
    return math.ceil(RESAMPLE_ZERO_CROSSINGS * orig_rate / (RESAMPLE_ROLLOFF * lower))

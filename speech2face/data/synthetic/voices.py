"""Synthetic voices: an :class:`Identity` reading sentences through eSpeak NG with a voice of
its own, and the recording channel each video's sound track passes through."""

from __future__ import annotations

import itertools
import math

import numpy as np

from speech2face.data.speech import (
    DEFAULT_WPM,
    ENGINE_RATE,
    VoiceSpec,
    engine,
    load_sentences,
)
from speech2face.data.synthetic.people import ACCENT_LANGUAGES, Identity

__all__ = ["AUDIO_RATE", "CONTROL_RATE", "record", "synthesize_voice", "voice_of"]

AUDIO_RATE = 24_000  # AAC track rate (the pipeline resamples to 16 kHz)
NEUTRAL_VTL_CM = 17.5  # vocal-tract length of the speech engine's default (adult male) voice
CONTROL_RATE = 200  # Hz: the loudness envelope that drives the mouth
PHRASE_PAUSE_SECONDS = (0.15, 0.45)  # silence between two sentences of a segment
VOICE_LEAD_SECONDS = (0.05, 0.2)  # silence before the first word of a segment
VOICE_PEAK = 0.7  # a segment's peak level before the recording channel
BREATH_GAIN = 4.0  # aspiration noise per unit of breathiness, against the speech's RMS
MEAN_RATE = 4.6  # syllables per second of the engine's default speaking rate


def voice_of(identity: Identity) -> VoiceSpec:
    """The speech engine's voice for ``identity``."""
    return VoiceSpec(
        language=ACCENT_LANGUAGES[identity.accent],
        pitch_hz=identity.f0_hz,
        pitch_range_hz=identity.f0_hz * identity.intonation,
        formant_scale=NEUTRAL_VTL_CM / identity.vtl_cm,
        roughness=identity.roughness,
        words_per_minute=int(round(DEFAULT_WPM * identity.rate / MEAN_RATE)),
        klatt=identity.klatt,
    )


def synthesize_voice(
    identity: Identity,
    seconds: float,
    rng: np.random.Generator,
    rate: int = AUDIO_RATE,
    sentences: list[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``identity`` reading sentences for ``seconds``: ``((T,), (C,))`` waveform and loudness.

    Sentences are drawn from ``sentences`` (default: :func:`load_sentences`) without
    repeats within the segment and spoken one after another with short pauses; the last
    is cut off at the segment's end, as a segment of a longer talk is. The envelope is
    sampled at ``CONTROL_RATE`` Hz (0..1) and drives the mouth.
    """
    from scipy.signal import resample_poly

    sentences = sentences if sentences is not None else load_sentences()
    speech = engine()
    voice = voice_of(identity)
    target = int(math.ceil(seconds * ENGINE_RATE))
    parts = [np.zeros(int(rng.uniform(*VOICE_LEAD_SECONDS) * ENGINE_RATE), np.float32)]
    length = parts[0].size
    order = rng.permutation(len(sentences))
    for index in itertools.cycle(order):
        spoken = speech.say(sentences[int(index)], voice)
        parts.append(spoken)
        pause = np.zeros(int(rng.uniform(*PHRASE_PAUSE_SECONDS) * ENGINE_RATE), np.float32)
        parts.append(pause)
        length += spoken.size + pause.size
        if length >= target:
            break
    wav = np.concatenate(parts)[:target].astype(np.float64)
    divisor = math.gcd(int(rate), ENGINE_RATE)
    wav = resample_poly(wav, int(rate) // divisor, ENGINE_RATE // divisor)
    wav = wav[: int(round(seconds * rate))]
    wav *= VOICE_PEAK / (np.max(np.abs(wav)) + 1e-9)
    # loudness at the control rate: the RMS of each 1/CONTROL_RATE s
    hop = max(1, int(rate) // CONTROL_RATE)
    n_ctrl = int(math.ceil(seconds * CONTROL_RATE))
    padded = np.zeros(n_ctrl * hop)
    padded[: min(wav.size, padded.size)] = wav[: padded.size]
    rms = np.sqrt((padded.reshape(n_ctrl, hop) ** 2).mean(axis=1))
    # breathiness: aspiration, high-passed noise that follows the loudness of the speech
    t_ctrl = (np.arange(n_ctrl) + 0.5) * hop
    loudness = np.interp(np.arange(wav.size), t_ctrl, rms)
    noise = np.diff(rng.standard_normal(wav.size + 1)) * 0.5
    wav = wav + BREATH_GAIN * identity.breathiness * loudness * noise
    wav *= VOICE_PEAK / (np.max(np.abs(wav)) + 1e-9)
    # the mouth opens fully on loud syllables: the envelope is scaled to its 95th percentile
    envelope = np.clip(rms / (np.percentile(rms, 95) + 1e-9), 0.0, 1.0)
    return wav.astype(np.float32), envelope


def record(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:  # (T,) -> (T,)
    """One video's sound track through a recording channel drawn from ``rng`` (a room,
    noise, band limits, a level, sometimes coarse quantisation): ``(T,)`` float32 at
    :data:`AUDIO_RATE`."""
    import torch

    from speech2face.augment import RecordingChannel

    channel = RecordingChannel(gain_db=(-12.0, 3.0), sample_rate=AUDIO_RATE)
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    with torch.inference_mode():
        out = channel(torch.from_numpy(np.asarray(audio, np.float32))[None], generator)
    return out[0].numpy().astype(np.float32)

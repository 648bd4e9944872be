"""The speech engine: real sentences, a voice of its own per speaker, one-line errors."""

from __future__ import annotations

import sys

import librosa
import numpy as np
import pytest

from speech2face.data.speech import (
    ENGINE_RATE,
    Espeak,
    SpeechEngineError,
    VoiceSpec,
    engine,
    load_sentences,
)

VOICE = VoiceSpec(
    language="en-us",
    pitch_hz=120.0,
    pitch_range_hz=40.0,
    formant_scale=1.0,
    roughness=0.0,
    words_per_minute=175,
)
TEXT = "Four score and seven years ago our fathers brought forth on this continent a new nation."


def median_pitch(wav: np.ndarray) -> float:
    """librosa's pYIN: an independent pitch tracker."""
    f0, _, _ = librosa.pyin(wav, fmin=60, fmax=400, sr=ENGINE_RATE)
    return float(np.nanmedian(f0))


def centroid(wav: np.ndarray) -> float:
    return float(np.median(librosa.feature.spectral_centroid(y=wav, sr=ENGINE_RATE)))


def test_speech_is_speech():
    wav = engine().say(TEXT, VOICE)
    assert wav.dtype == np.float32 and np.abs(wav).max() <= 1.0
    assert 3.0 < wav.size / ENGINE_RATE < 8.0  # a sentence of 16 words at 175 words a minute
    # words and pauses: the loudness comes and goes
    rms = librosa.feature.rms(y=wav)[0]
    assert (rms < 0.1 * rms.max()).mean() > 0.05 and (rms > 0.3 * rms.max()).mean() > 0.2
    # the same samples again, whatever was said in between (in another voice, with noise)
    engine().say("Call me Ishmael.", VoiceSpec(**{**VOICE.__dict__, "klatt": 3, "roughness": 0.8}))
    assert np.array_equal(wav, engine().say(TEXT, VOICE))


def test_an_utterance_does_not_depend_on_what_the_engine_said_before():
    """The library's globals carry state from one utterance to the next: with one load, this
    voice (a high Caribbean-English voice with some roughness) came out as one of two
    waveforms, alternating from one saying to the next. Every utterance now has a fresh load,
    so its samples are the same every time, also from a second engine in the same process."""
    voice = VoiceSpec(
        language="en-029",
        pitch_hz=204.86,
        pitch_range_hz=130.78,
        formant_scale=1.1525,
        roughness=0.1824,
        words_per_minute=157,
    )
    first = engine().say(TEXT, voice)
    for _ in range(2):
        assert np.array_equal(first, engine().say(TEXT, voice))
    engine().say("One.", VoiceSpec(**{**voice.__dict__, "klatt": 4, "pitch_hz": 140.0}))
    assert np.array_equal(first, engine().say(TEXT, voice))
    assert np.array_equal(first, Espeak().say(TEXT, voice))


@pytest.mark.parametrize("pitch", [95.0, 140.0, 210.0])
def test_the_voice_has_its_pitch(pitch):
    voice = VoiceSpec(**{**VOICE.__dict__, "pitch_hz": pitch, "pitch_range_hz": 0.3 * pitch})
    assert median_pitch(engine().say(TEXT, voice)) == pytest.approx(pitch, rel=0.12)


def test_a_shorter_tract_raises_the_formants():
    low = engine().say(TEXT, VoiceSpec(**{**VOICE.__dict__, "formant_scale": 0.95}))
    high = engine().say(TEXT, VoiceSpec(**{**VOICE.__dict__, "formant_scale": 1.2}))
    assert centroid(high) > 1.1 * centroid(low)


def test_rate_klatt_and_accent_change_the_voice():
    slow = engine().say(TEXT, VoiceSpec(**{**VOICE.__dict__, "words_per_minute": 120}))
    fast = engine().say(TEXT, VoiceSpec(**{**VOICE.__dict__, "words_per_minute": 240}))
    assert slow.size > 1.5 * fast.size
    klatt = engine().say(TEXT, VoiceSpec(**{**VOICE.__dict__, "klatt": 3}))
    british = engine().say(TEXT, VoiceSpec(**{**VOICE.__dict__, "language": "en-gb-x-rp"}))
    plain = engine().say(TEXT, VOICE)
    for other in (klatt, british):
        assert other.size != plain.size or not np.allclose(other, plain)


def test_errors_are_one_line(tmp_path, monkeypatch):
    with pytest.raises(SpeechEngineError, match="no voice 'xx-nowhere'"):
        engine().say(TEXT, VoiceSpec(**{**VOICE.__dict__, "language": "xx-nowhere"}))
    with pytest.raises(SpeechEngineError, match="empty text"):
        engine().say("  ", VOICE)
    with pytest.raises(SpeechEngineError, match="cannot read the sentence list"):
        load_sentences(tmp_path / "missing.txt")
    (tmp_path / "comments.txt").write_text("# only a comment\n\n")
    with pytest.raises(SpeechEngineError, match="holds no sentences"):
        load_sentences(tmp_path / "comments.txt")
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)
    with pytest.raises(SpeechEngineError, match="pip install espeakng-loader") as error:
        Espeak()
    assert "\n" not in str(error.value)


def test_the_sentence_list():
    sentences = load_sentences()
    assert len(sentences) >= 100 and len(set(sentences)) == len(sentences)
    assert all(not s.startswith("#") and len(s.split()) >= 2 for s in sentences)

"""The library behind s2f-infer: windows, silence, averaging, precision, the default model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speech2face import inference
from speech2face.audio import SAMPLE_RATE, spectrogram
from speech2face.errors import S2FError
from speech2face.inference import (
    InferenceError,
    Portraitist,
    default_checkpoint,
    install_default,
    load_voice_bundle,
)
from tests.inference.conftest import buzz, voice

RATE = SAMPLE_RATE
WINDOW = 48_000  # the tests' checkpoint: 3 s windows


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(round(seconds * RATE)))


def tensor(wav: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(wav.astype(np.float32))


def direct_feature(artist: Portraitist, clips: torch.Tensor) -> torch.Tensor:
    """The voice encoder on each (N,) window, raw outputs averaged, then placed."""
    bundle = artist.bundle
    with torch.no_grad():
        raw = bundle.voice_encoder(spectrogram(clips))  # (W, D)
        return bundle.place(raw.mean(dim=0, keepdim=True))[0]


def test_mostly_silent_windows_are_left_out_of_the_average(artist):
    # 3.6 s voice, 8.4 s silence, 3.0 s voice: 3 s windows every 1.5 s start at 0, 1.5, ...,
    # 12 s; voiced shares 1, .7, .2, 0, 0, 0, 0, .1, .5 -> ... the last two are .6 and 1.
    wav = np.concatenate([buzz(3.6), silence(8.1), buzz(3.3, pitch=200.0)])
    assert len(wav) == 15 * RATE
    windows = artist.windows(tensor(wav))
    starts = [0.0, 1.5, 10.5, 12.0]
    expected = torch.stack([tensor(wav)[int(s * RATE) : int(s * RATE) + WINDOW] for s in starts])
    assert torch.equal(windows.clips, expected)
    assert windows.seconds == pytest.approx(3.6 + 3.3, abs=0.05)

    result = artist.predict((tensor(wav), RATE))
    assert result.windows == 4
    torch.testing.assert_close(result.feature, direct_feature(artist, expected), atol=1e-5, rtol=0)


def start_of(clip: torch.Tensor, wav: torch.Tensor, near: int, within: int = 400) -> int:
    """Where ``clip`` (N,) begins in ``wav``, searched within ``within`` samples of ``near``."""
    for start in range(near - within, near + within + 1):
        if torch.equal(wav[start : start + clip.numel()], clip):
            return start
    raise AssertionError(f"clip not found within {within} samples of {near}")


def test_leading_and_trailing_silence_is_cut(artist):
    wav = tensor(np.concatenate([silence(2.0), buzz(4.0), silence(2.5)]))
    windows = artist.windows(wav)
    # 4 s of sound (to a frame or two): windows at its start and flush with its end.
    assert windows.clips.shape == (2, WINDOW)
    assert windows.seconds == pytest.approx(4.0, abs=0.05)
    first = start_of(windows.clips[0], wav, near=2 * RATE)
    last = start_of(windows.clips[1], wav, near=6 * RATE - WINDOW)
    assert last - first == pytest.approx(RATE, abs=640)


def test_when_every_window_is_mostly_silent_the_most_voiced_one_is_kept(artist):
    wav = np.concatenate([buzz(1.2), silence(6.0), buzz(1.5, pitch=190.0)])
    windows = artist.windows(tensor(wav))
    # Windows at 0, 1.5, 3, 4.5, 5.7 s hold 40 %, 0, 0, 0 and 50 % -> the last one (50 %).
    assert windows.clips.shape == (1, WINDOW)
    assert torch.equal(windows.clips[0], tensor(wav)[-WINDOW:])


def test_short_audio_is_tiled(artist):
    wav = buzz(1.3)
    result = artist.predict((tensor(wav), RATE))
    tiled = np.tile(wav, 3)[:WINDOW]
    assert result.windows == 1
    assert result.seconds == pytest.approx(1.3, abs=0.02)
    expected = direct_feature(artist, tensor(tiled)[None])
    torch.testing.assert_close(result.feature, expected, atol=1e-5, rtol=0)
    assert result.portrait.dtype == torch.uint8
    assert result.portrait.shape == (3, artist.image_size, artist.image_size)
    image = artist.portrait((tensor(wav), RATE))
    assert image.size == (artist.image_size, artist.image_size) and image.mode == "RGB"
    assert np.array_equal(np.asarray(image), result.portrait.permute(1, 2, 0).numpy())


def test_the_placement_follows_the_average(checkpoint):
    """A centred-cosine model: the average of the raw outputs is placed, not the other way."""
    bundle = load_voice_bundle(checkpoint)
    bundle.mean_feature = torch.randn(bundle.feature_dim)
    bundle.feature_radius = 3.0
    artist = Portraitist(bundle, "cpu", fast=False)
    wav = voice(8.0, seed=3)
    windows = artist.windows(tensor(wav))
    assert windows.clips.shape[0] >= 3
    result = artist.predict((tensor(wav), RATE))
    expected = direct_feature(artist, windows.clips)
    torch.testing.assert_close(result.feature, expected, atol=1e-5, rtol=0)
    assert (result.feature - bundle.mean_feature).norm() == pytest.approx(3.0, rel=1e-4)


@pytest.mark.parametrize(
    ("wav", "problem"),
    [
        (silence(4.0), "silent"),
        (np.random.default_rng(0).normal(0, 10 ** (-75 / 20), 4 * RATE), "silent"),
        (np.concatenate([silence(2.0), buzz(0.6), silence(2.0)]), "only 0.6"),
        (np.concatenate([buzz(2.0)[:-5], [np.nan], buzz(0.1)]), "NaN"),
        (np.zeros(0), "no audio samples"),
    ],
    ids=["zeros", "hiss", "too-short", "nan", "empty"],
)
def test_bad_waveforms_are_refused_in_one_line(artist, wav, problem):
    with pytest.raises(InferenceError, match=problem) as caught:
        artist.predict((tensor(wav), RATE))
    assert "\n" not in str(caught.value)


def test_silence_is_found_as_librosa_finds_it():
    """voiced_mask against librosa.effects.split with the same rule, on noise of many levels
    switched on and off (digital silence, hiss under the floor, quiet and loud stretches)."""
    import librosa.effects

    from speech2face.audio import HOP_LENGTH, WIN_LENGTH

    floor = 10.0 ** ((inference.SILENCE_FLOOR_DBFS + inference.SILENCE_TOP_DB) / 20.0)
    rng = np.random.default_rng(0)
    compared = 0
    for _ in range(60):
        n = int(rng.integers(100, 40_000))
        level = rng.choice([1e-5, 1e-3, 0.1, 0.5])
        gate = np.repeat(rng.choice([0.0, 1e-3, 1e-2, 1.0], size=n // 800 + 1), 800)[:n]
        wav = (rng.standard_normal(n) * level * gate).astype(np.float32)
        intervals = librosa.effects.split(
            wav,
            top_db=inference.SILENCE_TOP_DB,
            ref=lambda rms: max(float(np.max(rms)), floor),
            frame_length=WIN_LENGTH,
            hop_length=HOP_LENGTH,
        )
        expected = np.zeros(n, dtype=bool)
        for start, stop in intervals:
            expected[start:stop] = True
        if not expected.any():
            with pytest.raises(InferenceError, match="silent"):
                inference.voiced_mask(tensor(wav))
            continue
        np.testing.assert_array_equal(inference.voiced_mask(tensor(wav)).numpy(), expected)
        compared += 1
    assert compared > 30


def test_frame_rms_matches_librosa():
    import librosa.feature

    from speech2face.audio import HOP_LENGTH, WIN_LENGTH

    wav = np.random.default_rng(1).standard_normal(12_345).astype(np.float32)
    expected = librosa.feature.rms(y=wav, frame_length=WIN_LENGTH, hop_length=HOP_LENGTH)[0]
    np.testing.assert_allclose(inference.frame_rms(tensor(wav)).numpy(), expected, rtol=1e-5)


def test_bad_sources_are_refused(artist):
    with pytest.raises(InferenceError, match=r"\(L,\)"):
        artist.predict((torch.zeros(2, RATE), RATE))
    for rate in (0, 999, 384_001, 16_000.5):
        with pytest.raises(InferenceError, match="sample rate must be an integer from 1000 to"):
            artist.predict((tensor(buzz(2.0)), rate))
    with pytest.raises(InferenceError, match="file path or a"):
        artist.predict(tensor(buzz(2.0)))
    with pytest.raises(S2FError, match="no such file"):
        artist.predict("/nonexistent/voice.wav")


def test_any_sample_rate_is_resampled(artist):
    wav16 = buzz(4.0)
    wav48 = buzz(4.0, rate=48_000)
    a = artist.predict((tensor(wav16), RATE)).feature
    b = artist.predict((tensor(wav48), 48_000)).feature
    assert torch.nn.functional.cosine_similarity(a, b, dim=0) > 0.999


def test_bf16_fast_path_keeps_the_feature(checkpoint, monkeypatch):
    """channels_last + bf16 autocast (forced on: emulated where the CPU lacks bf16) stays
    within cosine 0.999 of float32."""
    monkeypatch.setattr(inference, "bf16_supported", lambda device: True)
    fast = Portraitist(load_voice_bundle(checkpoint), "cpu", fast=True)
    exact = Portraitist(load_voice_bundle(checkpoint), "cpu", fast=False)
    assert fast.precision == "channels_last, bf16 autocast" and exact.precision == "fp32"
    source = (tensor(voice(7.0, seed=5)), RATE)
    a, b = fast.predict(source).feature, exact.predict(source).feature
    assert a.dtype == torch.float32
    assert torch.nn.functional.cosine_similarity(a, b, dim=0) >= 0.999


def test_without_bf16_the_fast_path_is_float32(checkpoint, monkeypatch):
    monkeypatch.setattr(inference, "bf16_supported", lambda device: False)
    artist = Portraitist(load_voice_bundle(checkpoint), "cpu", fast=True)
    assert artist.precision == "channels_last, fp32" and not artist.bf16
    exact = Portraitist(load_voice_bundle(checkpoint), "cpu", fast=False)
    source = (tensor(voice(4.0, seed=6)), RATE)
    a, b = artist.predict(source).feature, exact.predict(source).feature
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_default_checkpoint_lives_under_s2f_home(tmp_path, monkeypatch):
    monkeypatch.setenv("S2F_HOME", str(tmp_path))
    assert default_checkpoint() == tmp_path / "models" / "default.pt"
    monkeypatch.delenv("S2F_HOME")
    assert default_checkpoint() == (
        __import__("pathlib").Path.home() / ".cache" / "speech2face" / "models" / "default.pt"
    )


def test_missing_default_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.setenv("S2F_HOME", str(tmp_path))
    with pytest.raises(InferenceError) as caught:
        Portraitist.from_checkpoint()
    message = str(caught.value)
    assert str(tmp_path / "models" / "default.pt") in message
    assert "s2f-demo" in message and "--checkpoint" in message and "\n" not in message


def test_install_default_checks_then_copies(checkpoint, decoder_only, tmp_path, monkeypatch):
    monkeypatch.setenv("S2F_HOME", str(tmp_path / "home"))
    with pytest.raises(InferenceError, match="face decoder alone"):
        install_default(decoder_only)
    assert not default_checkpoint().exists()
    installed = install_default(checkpoint)
    assert installed == default_checkpoint()
    assert installed.read_bytes() == checkpoint.read_bytes()
    assert sorted(p.name for p in installed.parent.iterdir()) == ["default.pt"]
    assert install_default(installed) == installed  # installing the default itself: a no-op
    artist = Portraitist.from_checkpoint(device="cpu")
    assert artist.window_samples == WINDOW


def test_devices():
    assert inference.resolve_device("cpu").type == "cpu"
    assert inference.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(InferenceError, match="unknown device"):
        inference.resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(InferenceError, match="no CUDA device"):
            inference.resolve_device("cuda")

"""The paper's audio front end, checked against an independent NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from speech2face import audio
from speech2face.audio import (
    N_FRAMES,
    N_FREQ,
    N_SAMPLES,
    AudioError,
    fit_to_length,
    load_audio,
    num_frames,
    spectrogram,
)
from tests.media import dominant_frequency, tone, write_av


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
    real_decode = av.container.InputContainer.decode

    def counting_decode(self, *args, **kwargs):
        for frame in real_decode(self, *args, **kwargs):
            decoded.append(frame.samples)
            yield frame

    monkeypatch.setattr(av.container.InputContainer, "decode", counting_decode)
    wav = load_audio(path, max_seconds=2.0)
    assert wav.shape == (32_000,)
    assert 0 < sum(decoded) < 3 * 16_000  # about 2 s of the 120 s were decoded


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


def test_module_exports_are_documented():
    for name in audio.__all__:
        assert hasattr(audio, name), name

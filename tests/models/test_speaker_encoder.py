"""The GE2E voice encoder: Resemblyzer's embedding from our spectrogram, its mel front end,
level invariance, freezing, checkpoints, the inference path, Hydra, and a short training run."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from speech2face.audio import N_SAMPLES, SAMPLE_RATE, resample, spectrogram
from speech2face.config import config_dir
from speech2face.models import (
    GE2EEncoderError,
    GE2EVoiceEncoder,
    GE2EWeightsError,
    load_checkpoint,
    save_checkpoint,
)
from speech2face.models.speaker_encoder import (
    mel_filterbank,
    partial_starts,
    resemblyzer_weights_path,
)

CENTRE_PAD = 200  # librosa's centred STFT pads n_fft // 2 zeros at each end
SPEECH = [  # eSpeak NG voice | text: four speakers, 3.5-4.5 s each
    "en-us|The quick brown fox jumps over the lazy dog near the river bank today",
    "en-us+f3|She sells sea shells by the sea shore and the shells she sells are surely seashells",
    "en+m3|A journey of a thousand miles begins with a single step and ends with many more",
    "en-us+klatt4|Every morning the baker opens his shop and sells warm bread to the neighbours",
]
# eSpeak NG runs in a child process: the library keeps global state (its callback, its data
# directory) that the corpus's speech engine in this process must not share.
SPEAK = r"""
import ctypes, sys
from pathlib import Path
import numpy as np
import espeakng_loader

lib = ctypes.CDLL(espeakng_loader.get_library_path())
lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                             ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
data = str(Path(espeakng_loader.get_data_path()).parent).encode()
assert lib.espeak_Initialize(2, 0, data, 0) == 22050  # synchronous; 22,050 Hz int16
chunks = []
Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                            ctypes.c_void_p)
def collect(samples, count, events):
    if count > 0:
        chunks.append(np.ctypeslib.as_array(samples, (count,)).copy())
    return 0
callback = Callback(collect)
lib.espeak_SetSynthCallback(callback)
out = {}
for i, item in enumerate(sys.argv[2:]):
    voice, text = item.split("|", 1)
    assert lib.espeak_SetVoiceByName(voice.encode()) == 0, voice
    chunks.clear()
    encoded = text.encode()
    lib.espeak_Synth(encoded, len(encoded) + 1, 0, 1, 0, 1, None, None)
    lib.espeak_Synchronize()
    out[f"u{i}"] = np.concatenate(chunks)
np.savez(sys.argv[1], **out)
"""
ESPEAK_RATE = 22_050


def import_resemblyzer():
    """Resemblyzer, imported without its dependencies' deprecation notes (pkg_resources in
    webrtcvad, scipy.ndimage.morphology); skips the test when it is not installed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pytest.importorskip("resemblyzer")


def harmonic_voice(seconds: float, pitch: float, seed: int) -> np.ndarray:
    """Fallback speech stand-in: a gliding harmonic series shaped by two moving formants,
    in syllables of about 200 ms. ``(seconds * 16000,)`` float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = pitch * (1 + 0.1 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6)))
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    formant1 = 500 + 300 * np.sin(2 * np.pi * 2.3 * t + rng.uniform(0, 6))
    formant2 = 1500 + 600 * np.sin(2 * np.pi * 1.7 * t + rng.uniform(0, 6))
    wav = np.zeros_like(t)
    for k in range(1, int(4000 / pitch)):
        f = k * f0
        gain = np.exp(-(((f - formant1) / 200) ** 2)) + 0.5 * np.exp(-(((f - formant2) / 300) ** 2))
        wav += (gain + 0.02) * np.sin(k * phase) / k
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 5 * t) ** 2
    return (wav * envelope / np.abs(wav).max() * 0.5).astype(np.float32)


def trim(wav: np.ndarray, threshold: float = 0.02) -> np.ndarray:
    """``wav`` from its first to its last sample above ``threshold``, cut to whole hops."""
    loud = np.flatnonzero(np.abs(wav) > threshold)
    wav = wav[loud[0] : loud[-1] + 1]
    return wav[: len(wav) // 160 * 160]


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> list[np.ndarray]:
    """Four speakers' utterances at 16 kHz, float32, without leading or trailing silence:
    eSpeak NG's speech (espeakng-loader), or harmonic stand-ins if it cannot run."""
    out = tmp_path_factory.mktemp("speech") / "speech.npz"
    try:
        subprocess.run(
            [sys.executable, "-c", SPEAK, str(out), *SPEECH],
            check=True,
            capture_output=True,
            timeout=60,
        )
        saved = np.load(out)
        voices = []
        for i in range(len(SPEECH)):
            wav = torch.from_numpy(saved[f"u{i}"].astype(np.float32) / 32768)
            voices.append(trim(resample(wav, ESPEAK_RATE, SAMPLE_RATE).numpy()))
        return voices
    except (subprocess.SubprocessError, OSError) as error:
        warnings.warn(f"eSpeak NG did not run ({error}): harmonic stand-ins instead", stacklevel=1)
        return [harmonic_voice(4.0, pitch, i) for i, pitch in enumerate((110, 210, 130, 180))]


@pytest.fixture(scope="module")
def model() -> GE2EVoiceEncoder:
    torch.manual_seed(0)
    return GE2EVoiceEncoder.pretrained(out_dim=16, hidden_dim=32).eval()


def at_dbfs(wav: np.ndarray, dbfs: float) -> np.ndarray:
    return (wav / np.sqrt(np.mean(wav**2)) * 10 ** (dbfs / 20)).astype(np.float32)


# --------------------------------------------------------------------------- reference


def test_embedding_matches_resemblyzer(model, speech):
    """Our embedding of ``spectrogram(wav)`` against Resemblyzer's ``embed_utterance`` of
    ``preprocess_wav(wav)``. The voices are at -40 dBFS, so Resemblyzer (which only raises
    quiet audio) brings them to -30 dBFS as we do. What still differs: Resemblyzer's silence
    trimming (webrtcvad; the utterances have no leading or trailing silence, and it cuts at most
    a few hundred samples of them), its level measured on the waveform before that (ours on the
    spectrogram's frames), and its centred STFT (frame t centred on sample 160 t, ours on
    160 f + 200). Given Resemblyzer's own trimmed waveform, zero-padded as its STFT pads it,
    our frames are its frames and the embeddings agree to float precision."""
    resemblyzer = import_resemblyzer()
    reference = resemblyzer.VoiceEncoder("cpu", verbose=False)
    ours, theirs = [], []
    for wav in speech:
        wav = at_dbfs(wav, -40.0)
        trimmed = resemblyzer.preprocess_wav(wav)
        assert len(trimmed) >= 0.9 * len(wav)  # the comparison is of the same speech
        expected = torch.from_numpy(reference.embed_utterance(trimmed))
        with torch.no_grad():
            same_frames = model.embed(
                spectrogram(F.pad(torch.from_numpy(trimmed), (200, 200)))[None]
            )[0]
            plain = model.embed(spectrogram(torch.from_numpy(wav))[None])[0]
        assert float(same_frames @ expected) > 0.99999
        assert float(plain @ expected) > 0.995  # measured: 0.9966-0.9993 on eSpeak's voices
        ours.append(plain)
        theirs.append(expected)
    # Both see the same speakers as alike and as different.
    ours, theirs = torch.stack(ours), torch.stack(theirs)
    assert (ours @ ours.T - theirs @ theirs.T).abs().max() < 0.03


def test_partial_windows_match_resemblyzer():
    resemblyzer = import_resemblyzer()
    for samples in (160, 16_000, 25_600, 32_000, 48_000, 96_000, 123_360, 200_000):
        samples -= samples % 160
        frames = 1 + samples // 160  # a centred STFT's frames
        _, slices = resemblyzer.VoiceEncoder.compute_partial_slices(samples, 1.3, 0.75)
        assert partial_starts(frames) == [s.start for s in slices]
    assert partial_starts(598) == [0, 77, 154, 231, 308, 385, 462]  # 6 s: seven windows


def test_weights_are_resemblyzers_file():
    import_resemblyzer()
    state = torch.load(resemblyzer_weights_path(), weights_only=True, map_location="cpu")[
        "model_state"
    ]
    model = GE2EVoiceEncoder.pretrained(out_dim=4, hidden_dim=4)
    for name, value in model.ge2e.state_dict().items():
        assert torch.equal(value, state[name])


# --------------------------------------------------------------------------- front end


def test_mel_filterbank_is_librosas():
    import librosa

    expected = librosa.filters.mel(sr=16_000, n_fft=400, n_mels=40)
    torch.testing.assert_close(mel_filterbank(), torch.from_numpy(expected), rtol=1e-6, atol=1e-9)
    for n_fft, n_mels in ((512, 40), (400, 80)):  # the general formula, too
        expected = librosa.filters.mel(sr=16_000, n_fft=n_fft, n_mels=n_mels)
        got = mel_filterbank(n_fft=n_fft, n_mels=n_mels)
        torch.testing.assert_close(got, torch.from_numpy(expected), rtol=1e-6, atol=1e-9)


def test_mel_spectrogram_is_librosas_on_the_same_frames():
    """The 512-point spectrum of each zero-padded 400-sample frame gives back exactly the
    400-point one librosa takes: same power, no rescaling."""
    import librosa

    wav = np.random.default_rng(0).standard_normal(16_000).astype(np.float32) * 0.1
    expected = librosa.feature.melspectrogram(
        y=wav, sr=16_000, n_fft=400, hop_length=160, n_mels=40
    ).T  # (101, 40), centred frames
    model = GE2EVoiceEncoder(out_dim=4, hidden_dim=4, level_dbfs=None)
    spec = spectrogram(F.pad(torch.from_numpy(wav), (CENTRE_PAD, CENTRE_PAD)))[None]
    got = model.mel_spectrogram(spec)[0]
    assert got.shape == expected.shape
    torch.testing.assert_close(got, torch.from_numpy(expected), rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- behaviour


def test_level_invariance(model, speech):
    wav = torch.from_numpy(speech[0])
    with torch.no_grad():
        outputs = [model(spectrogram(wav * gain)[None]) for gain in (0.01, 0.3, 1.0, 3.0)]
        embeds = [model.embed(spectrogram(wav * gain)[None]) for gain in (0.01, 3.0)]
    for output in outputs[1:]:
        torch.testing.assert_close(output, outputs[0], rtol=1e-4, atol=1e-5)
    assert float(embeds[0] @ embeds[1].T) > 0.99999


def test_shapes_any_length_and_batches(model):
    torch.manual_seed(1)
    wavs = torch.randn(3, N_SAMPLES) * 0.05
    with torch.no_grad():
        batch = model(spectrogram(wavs))
        alone = model(spectrogram(wavs[1:2]))
        short = model(spectrogram(torch.randn(1, 800)))  # 3 frames, one zero-padded window
        embed = model.embed(spectrogram(wavs))
    assert batch.shape == (3, 16) and short.shape == (1, 16)
    torch.testing.assert_close(batch[1:2], alone, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(embed.norm(dim=1), torch.ones(3))
    assert torch.isfinite(short).all()
    with torch.no_grad():
        silent = model(spectrogram(torch.zeros(1, 16_000)))
    assert torch.isfinite(silent).all()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):  # the GE2E part in float32
        torch.testing.assert_close(model.embed(spectrogram(wavs)), embed)
        torch.testing.assert_close(model(spectrogram(wavs)).float(), batch, rtol=0.05, atol=0.02)
    with pytest.raises(GE2EEncoderError, match=r"\(B, 2, T, 257\)"):
        model(torch.zeros(1, 2, 100, 256))


def test_configuration_errors():
    with pytest.raises(GE2EEncoderError, match="out_dim"):
        GE2EVoiceEncoder(out_dim=0)
    with pytest.raises(GE2EEncoderError, match="partial_rate"):
        GE2EVoiceEncoder(partial_rate=0.1)  # windows further apart than they are long
    with pytest.raises(GE2EEncoderError, match="min_coverage"):
        GE2EVoiceEncoder(min_coverage=0)
    assert GE2EVoiceEncoder(out_dim=4, hidden_dim=4).config.partial_hop == 77
    for bad in (-0.1, float("nan"), 1.0, "0.1", True):
        with pytest.raises(GE2EEncoderError, match="embedding_dropout"):
            GE2EVoiceEncoder(out_dim=4, hidden_dim=4, embedding_dropout=bad)
    for bad in (-0.1, float("inf"), 5.0, None):
        with pytest.raises(GE2EEncoderError, match="embedding_noise"):
            GE2EVoiceEncoder(out_dim=4, hidden_dim=4, embedding_noise=bad)


def test_embedding_noise_and_dropout_act_in_training_only(model):
    """The regularised head sees noisy, partly dropped embeddings while it trains, and the
    embedding itself (unit length, the same for the same voice) at inference."""
    noisy = GE2EVoiceEncoder(out_dim=16, hidden_dim=32, embedding_noise=0.15, embedding_dropout=0.3)
    noisy.load_state_dict(model.state_dict())
    spec = spectrogram(torch.randn(2, N_SAMPLES) * 0.05)
    with torch.no_grad():
        assert torch.equal(noisy.eval()(spec), model(spec))
        embedding = model.embed(spec)  # (2, 256)
        head = model.fc2(model.relu(model.fc1(embedding)))
        torch.manual_seed(0)
        first = noisy.train()(spec)
        torch.manual_seed(0)
        again = noisy(spec)
        torch.manual_seed(1)
        other = noisy(spec)
    assert torch.equal(first, again) and not torch.allclose(first, other)
    # Noise of 0.15 a coordinate is 2.4 times the embedding's length: the outputs move far.
    assert (first - head).norm(dim=1).min() > 0.1 * head.norm(dim=1).max()
    noisy.eval()


def trainable(model: torch.nn.Module) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def test_frozen_and_fine_tuned_parameters():
    frozen = GE2EVoiceEncoder(out_dim=8, hidden_dim=16)
    tuned = GE2EVoiceEncoder(out_dim=8, hidden_dim=16, freeze_encoder=False)
    head = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}
    assert trainable(frozen) == head
    assert trainable(tuned) == head | {f"ge2e.{name}" for name, _ in tuned.ge2e.named_parameters()}
    assert sum(p.numel() for p in frozen.ge2e.parameters()) == 1_423_616  # Resemblyzer's
    frozen.train()
    tuned.train()
    assert frozen.training and frozen.fc1.training and not frozen.ge2e.training
    assert not frozen.ge2e.lstm.training
    assert tuned.ge2e.training
    spec = spectrogram(torch.randn(2, 32_000) * 0.05)
    for model in (frozen, tuned):
        model(spec).square().mean().backward()
    assert all(p.grad is None for p in frozen.ge2e.parameters())
    assert frozen.fc1.weight.grad is not None
    assert all(p.grad is not None for p in tuned.ge2e.parameters())


# --------------------------------------------------------------------------- checkpoints


def no_resemblyzer(monkeypatch):
    """Make resemblyzer look uninstalled (``find_spec`` says so)."""
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name.split(".")[0] == "resemblyzer" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_missing_resemblyzer_is_one_line_naming_the_fix(monkeypatch):
    no_resemblyzer(monkeypatch)
    with pytest.raises(GE2EWeightsError, match=r'pip install -e "\.\[ge2e\]"') as caught:
        GE2EVoiceEncoder.pretrained(out_dim=4, hidden_dim=4)
    assert "\n" not in str(caught.value)


def test_bad_weight_file_is_one_line(tmp_path):
    torch.save({"model_state": {"lstm.weight_ih_l0": torch.zeros(3)}}, tmp_path / "bad.pt")
    with pytest.raises(GE2EWeightsError, match="does not hold"):
        GE2EVoiceEncoder.pretrained(tmp_path / "bad.pt", out_dim=4, hidden_dim=4)
    with pytest.raises(GE2EWeightsError, match="not found"):
        GE2EVoiceEncoder.pretrained(tmp_path / "missing.pt", out_dim=4, hidden_dim=4)


def test_checkpoint_round_trip_without_resemblyzer(model, tmp_path, monkeypatch):
    path = save_checkpoint(model, tmp_path / "ge2e.pt", step=3)
    payload = torch.load(path, weights_only=True)
    assert payload["kind"] == "ge2e_voice_encoder"
    assert payload["config"]["freeze_encoder"] is True and payload["config"]["out_dim"] == 16
    no_resemblyzer(monkeypatch)  # the file holds every weight
    rebuilt = load_checkpoint(path, kind="ge2e_voice_encoder")
    assert isinstance(rebuilt, GE2EVoiceEncoder) and not rebuilt.training
    assert rebuilt.config == model.config
    spec = spectrogram(torch.randn(2, N_SAMPLES) * 0.05)
    with torch.no_grad():
        assert torch.equal(rebuilt(spec), model(spec))


def write_voice_checkpoint(path: Path, voice: torch.nn.Module, feature_dim: int) -> Path:
    """A voice training checkpoint as ``Trainer.save`` writes it (a tiny decoder beside)."""
    from speech2face.models import FaceDecoder
    from speech2face.training.checkpoint import FORMAT, VERSION, model_entry

    torch.manual_seed(0)
    decoder = FaceDecoder(
        feature_dim, landmark_hidden=[8], image_size=56, texture_channels=16, min_channels=8
    )
    payload = {
        "format": FORMAT,
        "version": VERSION,
        **model_entry(voice),
        "training": {"task": "voice", "step": 1, "epoch": 0, "batch_in_epoch": 1},
        "bundle": {
            "face_encoder": "dlib",
            "feature_dim": feature_dim,
            "audio": {"sample_rate": SAMPLE_RATE, "clip_samples": 48_000, "power_law": 0.3},
            "config": "",
            "decoder": model_entry(decoder),
        },
    }
    torch.save(payload, path)
    return path


def test_inference_builds_it_on_the_meta_device(model, tmp_path, monkeypatch):
    from speech2face.inference import Portraitist, load_voice_bundle
    from speech2face.training.checkpoint import build_model

    path = write_voice_checkpoint(tmp_path / "voice.pt", model, feature_dim=16)
    no_resemblyzer(monkeypatch)
    # Every tensor is in the state dict, so build_model takes the meta-device path ...
    tensors = {name for name, _ in [*model.named_parameters(), *model.named_buffers()]}
    assert set(model.state_dict()) == tensors
    meta = build_model(torch.load(path, weights_only=True), assign=True)
    assert isinstance(meta, GE2EVoiceEncoder)
    assert not any(t.is_meta for t in [*meta.parameters(), *meta.buffers()])
    # ... and s2f-infer's bundle predicts what the model predicts.
    bundle = load_voice_bundle(path)
    assert isinstance(bundle.voice_encoder, GE2EVoiceEncoder)
    assert not bundle.voice_encoder.training and not bundle.voice_encoder.ge2e.training
    spec = spectrogram(torch.randn(2, 48_000) * 0.05)
    with torch.no_grad():
        torch.testing.assert_close(bundle.features(spec), model(spec))
    wav = harmonic_voice(4.0, 150.0, 0)
    for fast in (False, True):  # the fast path's channels_last and bf16 autocast too
        prediction = Portraitist(bundle, "cpu", fast=fast).predict((wav, SAMPLE_RATE))
        assert prediction.feature.shape == (16,) and prediction.portrait.shape == (3, 56, 56)
        assert torch.isfinite(prediction.feature).all()


# --------------------------------------------------------------------------- configs


def test_hydra_builds_it_pretrained_from_the_yaml():
    from hydra.utils import instantiate

    import_resemblyzer()
    node = OmegaConf.load(config_dir() / "model" / "voice_encoder_ge2e.yaml")
    cfg = OmegaConf.create({"model": node, "face_encoder": {"dim": 128}})
    cfg.model.hidden_dim = 64
    model = instantiate(cfg.model, _convert_="all")
    assert isinstance(model, GE2EVoiceEncoder)
    assert model.out_dim == 128 and model.config.freeze_encoder is True
    state = torch.load(resemblyzer_weights_path(), weights_only=True, map_location="cpu")[
        "model_state"
    ]
    assert torch.equal(model.ge2e.lstm.weight_hh_l2, state["lstm.weight_hh_l2"])
    assert trainable(model) == {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}


def test_it_is_a_model_choice_over_debug_presets():
    from speech2face.config import compose

    cfg = compose("train", ["model@model.voice=voice_encoder_ge2e", "debug=cpu", "task=voice"])
    assert cfg.model.voice._target_ == "speech2face.models.GE2EVoiceEncoder.pretrained"
    assert cfg.model.voice.out_dim == cfg.face_encoder.dim


# --------------------------------------------------------------------------- training


@pytest.mark.slow
def test_train_then_infer_and_evaluate(preprocessed, decoder_checkpoint, tmp_path):
    """``s2f-train task=voice model@model.voice=voice_encoder_ge2e debug=cpu`` for a few
    steps, with two heads and embedding noise as the demo trains it; its checkpoint is a
    bundle that s2f-infer and s2f-eval load."""
    from speech2face.inference import Portraitist
    from speech2face.training import load_bundle
    from tests.data.conftest import run_s2f
    from tests.evaluation.conftest import eval_args
    from tests.training.conftest import run_args

    import_resemblyzer()
    out = tmp_path / "run"
    args = run_args(
        preprocessed,
        out,
        "voice",
        f"decoder_checkpoint={decoder_checkpoint}",
        "model@model.voice=voice_encoder_ge2e",
        "model.voice.hidden_dim=64",
        "model.voice.heads=2",
        "model.voice.embedding_noise=0.15",
        "model.voice.embedding_dropout=0.3",
    )
    result = run_s2f("train", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    last = out / "checkpoints" / "last.pt"
    payload = torch.load(last, weights_only=True, map_location="cpu")
    assert payload["kind"] == "ge2e_voice_encoder"
    state = torch.load(resemblyzer_weights_path(), weights_only=True, map_location="cpu")[
        "model_state"
    ]
    for name, value in state.items():  # frozen: the GE2E weights did not move
        if name.startswith(("lstm.", "linear.")):
            assert torch.equal(payload["state_dict"][f"ge2e.{name}"], value)

    bundle = load_bundle(last)
    assert isinstance(bundle.voice_encoder, GE2EVoiceEncoder)
    assert bundle.voice_encoder.config.heads == 2 and not bundle.voice_encoder.training
    artist = Portraitist(bundle, "cpu", fast=False)
    prediction = artist.predict((harmonic_voice(4.0, 150.0, 0), SAMPLE_RATE))
    assert prediction.feature.shape == (bundle.feature_dim,)

    evaluation = tmp_path / "eval"
    result = run_s2f("eval", *eval_args(last, preprocessed, evaluation, "data.split=val"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert (evaluation / "metrics.json").is_file()


def test_independent_heads_train_apart_and_average_at_inference(model):
    """heads=3: in training (B, 3, out_dim), each head from its own noisy embedding; at
    inference their mean, which is each head's own two layers on the clean embedding."""
    heads = GE2EVoiceEncoder(out_dim=16, hidden_dim=32, heads=3, embedding_noise=0.15)
    heads.ge2e.load_state_dict(model.ge2e.state_dict())
    spec = spectrogram(torch.randn(2, N_SAMPLES) * 0.05)
    with torch.no_grad():
        heads.eval()
        averaged = heads(spec)
        embedding = heads.embed(spec)  # (2, 256)
        each = []
        for h in range(3):
            w1 = heads.fc1.weight[h * 32 : (h + 1) * 32]
            b1 = heads.fc1.bias[h * 32 : (h + 1) * 32]
            w2 = heads.fc2.weight[h * 16 : (h + 1) * 16, :, 0]
            b2 = heads.fc2.bias[h * 16 : (h + 1) * 16]
            each.append(torch.relu(embedding @ w1.T + b1) @ w2.T + b2)
        torch.testing.assert_close(averaged, torch.stack(each).mean(0), rtol=1e-5, atol=1e-6)
        heads.train()
        trained = heads(spec)
    assert averaged.shape == (2, 16) and trained.shape == (2, 3, 16)
    assert not torch.allclose(trained[:, 0], trained[:, 1])  # noise of their own
    with pytest.raises(GE2EEncoderError, match="heads"):
        GE2EVoiceEncoder(out_dim=4, hidden_dim=4, heads=0)
    with pytest.raises(GE2EEncoderError, match="heads must be at most 16"):
        GE2EVoiceEncoder(out_dim=4, hidden_dim=4, heads=17)

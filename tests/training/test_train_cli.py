"""Both tasks end to end through the real ``s2f-train`` command, and the bundle they leave."""

from __future__ import annotations

import pytest
import torch

from speech2face.audio import spectrogram
from speech2face.training import load_bundle, read_training_checkpoint
from tests.data.conftest import run_s2f
from tests.training.conftest import DECODER_SIZE, FEATURE_DIM, run_args

pytestmark = pytest.mark.slow


def check_run(out, task: str) -> None:
    checkpoints = out / "checkpoints"
    assert (checkpoints / "last.pt").is_file() and (checkpoints / "best.pt").is_file()
    assert sorted(p.name for p in checkpoints.glob("step-*.pt"))  # the last ones kept
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    config = (out / "config.yaml").read_text()
    assert f"task: {task}" in config
    payload = read_training_checkpoint(checkpoints / "last.pt")
    assert payload["training"]["step"] == 4
    assert payload["bundle"]["face_encoder"] == "dlib"


def test_decoder_then_voice(preprocessed, tmp_path):
    dec, voice = tmp_path / "dec", tmp_path / "voice"
    result = run_s2f("train", *run_args(preprocessed, dec, "decoder"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "identity term off" in result.stderr
    check_run(dec, "decoder")
    decoder = load_bundle(dec / "checkpoints" / "last.pt").face_decoder
    # The mean geometry was computed from the training crops, not left at the default.
    from speech2face.models import default_mean_landmarks

    default = torch.from_numpy(default_mean_landmarks(DECODER_SIZE))
    assert not torch.allclose(decoder.mean_landmarks, default)

    last = dec / "checkpoints" / "last.pt"
    result = run_s2f("train", *run_args(preprocessed, voice, "voice", f"decoder_checkpoint={last}"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "distillation off" in result.stderr
    assert "val/recall@1" in result.stderr  # the end summary
    check_run(voice, "voice")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(voice / "tensorboard"), size_guidance={"audio": 0})
    events.Reload()
    assert events.Tags()["audio"] == ["audio/voice/0", "audio/voice/1"]  # num_images=2
    clip = events.Audio("audio/voice/0")
    assert len(clip) == 1 and clip[0].sample_rate == 16000  # once per run
    assert "images/voice" in events.Tags()["images"]

    bundle = load_bundle(voice / "checkpoints" / "last.pt")
    assert bundle.voice_encoder is not None and bundle.feature_dim == FEATURE_DIM
    assert bundle.audio["clip_samples"] == 48000
    torch.testing.assert_close(
        bundle.face_decoder.state_dict()["fc_in.weight"], decoder.state_dict()["fc_in.weight"]
    )
    wav = torch.randn(2, bundle.audio["clip_samples"]) * 0.1
    features = bundle.features(spectrogram(wav))
    assert features.shape == (2, FEATURE_DIM)
    portraits = bundle.portrait(features)
    assert portraits.shape == (2, 3, DECODER_SIZE, DECODER_SIZE)
    assert float(portraits.min()) >= 0 and float(portraits.max()) <= 1

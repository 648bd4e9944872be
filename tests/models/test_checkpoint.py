"""Checkpoints rebuild their model from the file alone (read with weights_only=True)."""

from __future__ import annotations

import pytest
import torch

from speech2face.models import (
    CheckpointError,
    FaceDecoder,
    VoiceEncoder,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from speech2face.models.landmarks import default_mean_landmarks

TINY_VOICE = dict(
    out_dim=24,
    hidden_dim=32,
    channels=[4, 4, 8, 8, 8, 8, 16, 16, 16],
)


def trained_a_little(model: torch.nn.Module, inputs: torch.Tensor) -> torch.nn.Module:
    """One optimiser step in training mode, so weights and BatchNorm statistics move."""
    model.train()
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    out = model(inputs)
    loss = (out.image if hasattr(out, "image") else out).mean()
    loss.backward()
    optimiser.step()
    return model.eval()


def test_voice_encoder_round_trip(tmp_path):
    torch.manual_seed(0)
    spec = torch.randn(2, 2, 300, 257)
    model = trained_a_little(VoiceEncoder(**TINY_VOICE), spec)
    path = save_checkpoint(model, tmp_path / "sub" / "voice.pt", step=7)
    payload = torch.load(path, weights_only=True)  # plain data only
    assert payload["kind"] == "voice_encoder" and payload["step"] == 7
    assert payload["config"]["channels"] == TINY_VOICE["channels"]
    rebuilt = load_checkpoint(path)
    assert isinstance(rebuilt, VoiceEncoder) and not rebuilt.training
    assert rebuilt.config == model.config
    with torch.no_grad():
        assert torch.equal(rebuilt(spec), model(spec))
    assert not (tmp_path / "sub" / "voice.pt.tmp").exists()


def test_face_decoder_round_trip_keeps_mean_geometry(tmp_path):
    torch.manual_seed(0)
    features = torch.randn(2, 40)
    model = FaceDecoder(40, landmark_hidden=[8], texture_channels=16, min_channels=8)
    model.set_mean_geometry(default_mean_landmarks() + 3.0)
    trained_a_little(model, features)
    rebuilt = load_checkpoint(save_checkpoint(model, tmp_path / "decoder.pt"), kind="face_decoder")
    assert isinstance(rebuilt, FaceDecoder)
    assert torch.equal(rebuilt.mean_landmarks, model.mean_landmarks)
    with torch.no_grad():
        a, b = rebuilt(features), model(features)
    assert torch.equal(a.image, b.image) and torch.equal(a.landmarks, b.landmarks)


def test_face_decoder_with_other_landmark_count_round_trips(tmp_path):
    mean = torch.tensor(
        [[80.0, 90.0], [140.0, 90.0], [112.0, 120.0], [90.0, 160.0], [134.0, 160.0]]
    )
    model = FaceDecoder(
        8, num_landmarks=5, landmark_hidden=[8], texture_channels=16, min_channels=8,
        mean_landmarks=mean,
    )  # fmt: skip
    rebuilt = load_checkpoint(save_checkpoint(model, tmp_path / "five.pt"))
    assert rebuilt.config.num_landmarks == 5
    assert torch.equal(rebuilt.mean_landmarks, mean)


def test_bad_checkpoints_are_one_line_errors(tmp_path):
    model = VoiceEncoder(**TINY_VOICE)
    path = save_checkpoint(model, tmp_path / "voice.pt")
    with pytest.raises(CheckpointError, match="holds a 'voice_encoder', not a 'face_decoder'"):
        load_checkpoint(path, kind="face_decoder")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a speech2face model checkpoint"):
        read_checkpoint(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt is corrupt or truncated"):
        read_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(tmp_path / "absent.pt")
    with pytest.raises(CheckpointError, match="cannot checkpoint a Linear"):
        save_checkpoint(torch.nn.Linear(2, 2), tmp_path / "linear.pt")


def test_checkpoint_refuses_pickled_code(tmp_path):
    """weights_only=True: a file that would run code on load is rejected, not executed."""
    path = tmp_path / "evil.pt"
    torch.save({"kind": "voice_encoder", "config": {}, "state_dict": {}, "x": print}, path)
    with pytest.raises(CheckpointError, match="could not read checkpoint") as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "pickled Python objects (print)" in message and "could run code" in message
    assert "weights_only" not in message and "\n" not in message


@pytest.mark.parametrize("damage", ["truncated", "empty", "random"])
def test_corrupt_checkpoint_says_so(tmp_path, damage):
    """Not torch's advice to load with weights_only=False: the file is damaged."""
    path = save_checkpoint(VoiceEncoder(**TINY_VOICE), tmp_path / "voice.pt")
    data = path.read_bytes()
    damaged = {
        "truncated": data[: len(data) // 2],
        "empty": b"",
        "random": torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0))
        .to(torch.uint8)
        .numpy()
        .tobytes(),
    }[damage]
    path.write_bytes(damaged)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert message.startswith(f"checkpoint {path} is corrupt or truncated ({len(damaged):,} bytes")
    assert "weights_only" not in message and "\n" not in message


def test_every_model_setting_has_a_range():
    """Each setting a checkpoint's config holds is checked against a range before the model
    is built (speech2face.models.limits): a setting added to a model without one would make
    every checkpoint of it unreadable."""
    from dataclasses import fields

    from speech2face.models import GE2EVoiceEncoder
    from speech2face.models.face_decoder import FaceDecoder
    from speech2face.models.limits import MODEL_FIELDS
    from speech2face.models.voice_encoder import VoiceEncoder

    for model in (VoiceEncoder, GE2EVoiceEncoder, FaceDecoder):
        config = model(**({"out_dim": 4, "hidden_dim": 4} if model is GE2EVoiceEncoder else {}))
        names = {field.name for field in fields(config.config)}
        assert names <= set(MODEL_FIELDS[model.kind]), (
            model.kind,
            names - set(MODEL_FIELDS[model.kind]),
        )

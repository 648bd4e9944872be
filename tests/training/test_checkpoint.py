"""Building models from training checkpoints: the meta-device path inference takes."""

from __future__ import annotations

import pytest
import torch

from speech2face.models import FaceDecoder, FaceDecoderError, VoiceEncoder
from speech2face.models._io import safe_load
from speech2face.training.checkpoint import (
    TrainingCheckpointError,
    build_model,
    model_entry,
    read_training_checkpoint,
)

TINY_VOICE = {"out_dim": 16, "hidden_dim": 8, "channels": [4, 4, 4, 4, 4, 4, 8, 8, 8]}


def _entry(model: torch.nn.Module) -> dict:
    model.eval()
    return model_entry(model)


@pytest.mark.parametrize("assign", [False, True])
def test_built_voice_encoder_matches_the_original(assign):
    torch.manual_seed(0)
    original = VoiceEncoder(**TINY_VOICE).eval()
    entry = _entry(original)
    built = build_model(entry, assign=assign).eval()
    assert not any(t.is_meta for t in built.state_dict().values())
    spec = torch.randn(2, 2, 300, 257)
    with torch.no_grad():
        torch.testing.assert_close(built(spec), original(spec), rtol=0, atol=0)
    weight = entry["state_dict"]["fc1.weight"]
    # assign: the entry's tensors become the model's (no copy); otherwise they are copied in
    assert (built.fc1.weight.data_ptr() == weight.data_ptr()) is assign


def test_built_face_decoder_matches_the_original():
    torch.manual_seed(0)
    decoder = FaceDecoder(feature_dim=16, image_size=32, texture_base=4, min_channels=4).eval()
    entry = _entry(decoder)
    built = build_model(entry, assign=True).eval()
    assert not any(t.is_meta for t in built.state_dict().values())
    assert built.texture_fc.weight.data_ptr() == entry["state_dict"]["texture_fc.weight"].data_ptr()
    features = torch.randn(2, 16)
    with torch.no_grad():
        torch.testing.assert_close(built.render(features), decoder.render(features))


def test_assigned_decoder_still_checks_its_mean_geometry():
    decoder = FaceDecoder(feature_dim=16, image_size=32, texture_base=4, min_channels=4)
    entry = _entry(decoder)
    entry["state_dict"]["mean_landmarks"] = torch.full_like(decoder.mean_landmarks, float("nan"))
    with pytest.raises(FaceDecoderError, match="finite"):
        build_model(entry, assign=True)


def test_mapped_checkpoint_reads_like_a_loaded_one(tmp_path):
    path = tmp_path / "c.pt"
    torch.save({"a": torch.arange(5.0), "b": {"c": torch.ones(2, 2)}}, path)
    mapped = safe_load(path, TrainingCheckpointError, "checkpoint", mmap=True)
    loaded = safe_load(path, TrainingCheckpointError, "checkpoint")
    torch.testing.assert_close(mapped, loaded)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04broken"])
def test_unreadable_files_give_the_same_message_mapped_or_not(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    messages = []
    for mmap in (False, True):
        with pytest.raises(TrainingCheckpointError) as caught:
            read_training_checkpoint(path, mmap=mmap)
        messages.append(str(caught.value))
    assert messages[0] == messages[1] and "\n" not in messages[0]

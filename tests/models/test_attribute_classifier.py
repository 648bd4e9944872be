"""The attribute classifier: shapes, label encoding, and checkpoints that say which heads
were trained."""

from __future__ import annotations

import pytest
import torch

from speech2face.models import (
    AttributeClassifier,
    AttributeClassifierError,
    load_checkpoint,
    save_checkpoint,
)
from speech2face.models.attribute_classifier import bin_middle, label_targets


def tiny() -> AttributeClassifier:
    return AttributeClassifier(image_size=32, channels=[4, 8], hidden_dim=8)


def test_heads_and_input_size():
    model = tiny().eval()
    images = torch.randint(0, 256, (3, 3, 50, 40), dtype=torch.uint8)
    prepared = model.prepare(images)
    assert prepared.shape == (3, 3, 32, 32) and 0 <= float(prepared.min()) <= 1
    logits = model(prepared)
    assert {k: tuple(v.shape) for k, v in logits.items()} == {
        "gender": (3, 2), "age": (3, 9), "ethnicity": (3, 5),
    }  # fmt: skip
    with pytest.raises(AttributeClassifierError, match=r"\(B, 3, 32, 32\)"):
        model(torch.rand(1, 3, 30, 30))
    with pytest.raises(AttributeClassifierError, match="too small"):
        AttributeClassifier(image_size=8, channels=[4, 4, 4, 4])


def test_label_targets_bin_ages_and_mask_missing_labels():
    targets = label_targets([
        {"gender": "female", "age": 34.5, "ethnicity": "indian"},
        {"age": 85.0},
        {},
    ])  # fmt: skip
    assert targets["gender"].tolist() == [1, -1, -1]
    assert targets["age"].tolist() == [3, 8, -1]  # 30s, 80+
    assert targets["ethnicity"].tolist() == [2, -1, -1]
    with pytest.raises(AttributeClassifierError, match="gender label 'other'"):
        label_targets([{"gender": "other"}])
    assert [bin_middle(i) for i in (0, 3, 8)] == [5.0, 35.0, 85.0]


def test_checkpoint_rebuilds_the_model_and_its_trained_heads(tmp_path):
    model = tiny()
    assert model.trained_attributes == ()
    model.set_trained(("gender", "age"))
    path = save_checkpoint(model, tmp_path / "attributes.pt")
    loaded = load_checkpoint(path, kind="attribute_classifier")
    assert isinstance(loaded, AttributeClassifier)
    assert loaded.trained_attributes == ("gender", "age")
    assert loaded.config == model.config
    images = torch.rand(2, 3, 32, 32)
    model.eval()
    for name, value in model(images).items():
        torch.testing.assert_close(loaded(images)[name], value)
    with pytest.raises(AttributeClassifierError, match="unknown attributes"):
        model.set_trained(("height",))

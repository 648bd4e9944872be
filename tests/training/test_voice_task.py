"""The voice task's preparation: the mean training feature centres the loss, starts the
encoder at the mean face and travels in the bundle."""

from __future__ import annotations

import pytest
import torch

from speech2face.config import compose
from speech2face.data import ShardDataset
from speech2face.losses import CentredCosineLoss, Speech2FaceLoss
from speech2face.training import Trainer, load_bundle
from tests.training.conftest import run_args

pytestmark = pytest.mark.slow


def train_mean(root) -> torch.Tensor:  # (D,)
    dataset = ShardDataset(root, "train", train=False, rank=0, world_size=1)
    features = torch.stack([sample["feature"].double() for sample in dataset])
    return features.mean(0).float()


def test_centred_loss_and_mean_face_start(preprocessed, decoder_checkpoint, tmp_path):
    overrides = run_args(
        preprocessed,
        tmp_path / "run",
        "voice",
        f"decoder_checkpoint={decoder_checkpoint}",
        "loss@loss.voice=centred_cosine",
        "trainer.mean_geometry_samples=100000",
    )
    trainer = Trainer(compose("train", overrides))
    assert isinstance(trainer.task.loss, CentredCosineLoss)
    trainer.task.prepare(resuming=False)
    mean = train_mean(preprocessed)
    torch.testing.assert_close(trainer.task.loss.mean, mean)
    torch.testing.assert_close(trainer.model.fc2.bias.detach(), mean)

    trainer.fit()
    bundle = load_bundle(tmp_path / "run" / "checkpoints" / "last.pt")
    torch.testing.assert_close(bundle.mean_feature, mean)


def test_paper_loss_is_built_without_the_width(preprocessed, decoder_checkpoint, tmp_path):
    overrides = run_args(
        preprocessed, tmp_path / "run", "voice", f"decoder_checkpoint={decoder_checkpoint}"
    )
    trainer = Trainer(compose("train", overrides))
    assert isinstance(trainer.task.loss, Speech2FaceLoss)
    assert trainer.task.loss.f_vgg is None  # dlib has no classification head

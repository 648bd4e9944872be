"""The voice task's preparation: the mean training feature centres the loss, starts the
encoder at the mean face and travels in the bundle."""

from __future__ import annotations

import pytest
import torch

from speech2face.audio import spectrogram
from speech2face.config import compose
from speech2face.data import ShardDataset
from speech2face.losses import CentredCosineLoss, Speech2FaceLoss
from speech2face.training import Trainer, load_bundle
from tests.training.conftest import run_args

pytestmark = pytest.mark.slow


def train_features(root) -> torch.Tensor:  # (N, D)
    dataset = ShardDataset(root, "train", train=False, rank=0, world_size=1)
    return torch.stack([sample["feature"].double() for sample in dataset])


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
    features = train_features(preprocessed)
    mean = features.mean(0).float()
    spread = (features - features.mean(0)).pow(2).sum(1).mean().sqrt()
    torch.testing.assert_close(trainer.task.loss.mean, mean)
    assert float(trainer.task.loss.spread) == pytest.approx(float(spread), rel=1e-5)
    torch.testing.assert_close(trainer.model.fc2.bias.detach(), mean)

    trainer.fit()
    bundle = load_bundle(tmp_path / "run" / "checkpoints" / "last.pt")
    torch.testing.assert_close(bundle.mean_feature, mean)
    assert bundle.feature_radius == pytest.approx(float(spread), rel=1e-5)
    # the bundle's features are the predictions' directions at the training faces' spread
    spec = spectrogram(torch.randn(3, bundle.audio["clip_samples"]) * 0.1)
    raw = bundle.voice_encoder(spec)
    features = bundle.features(spec)
    torch.testing.assert_close((features - mean).norm(dim=1), torch.full((3,), float(spread)))
    cosine = torch.nn.functional.cosine_similarity(features - mean, raw - mean, dim=1)
    torch.testing.assert_close(cosine, torch.ones(3))


def test_paper_loss_is_built_without_the_width(preprocessed, decoder_checkpoint, tmp_path):
    overrides = run_args(
        preprocessed, tmp_path / "run", "voice", f"decoder_checkpoint={decoder_checkpoint}"
    )
    trainer = Trainer(compose("train", overrides))
    assert isinstance(trainer.task.loss, Speech2FaceLoss)
    assert trainer.task.loss.f_vgg is None  # dlib has no classification head
    trainer.fit()
    bundle = load_bundle(tmp_path / "run" / "checkpoints" / "last.pt")
    assert bundle.feature_radius is None  # the paper's loss: predictions used as they are

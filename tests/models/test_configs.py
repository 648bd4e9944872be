"""Every config in configs/model, configs/face_encoder and configs/loss instantiates."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from speech2face.config import config_dir
from speech2face.losses import FaceDecoderLoss, Speech2FaceLoss
from speech2face.models import (
    AttributeClassifier,
    FaceDecoder,
    FaceEncoder,
    GE2EVoiceEncoder,
    VoiceEncoder,
)

CONFIGS = config_dir()


def options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONFIGS / group).glob("*.yaml"))


def load(group: str, option: str):
    return OmegaConf.load(CONFIGS / group / f"{option}.yaml")


def test_the_expected_options_exist():
    assert {"vggface", "facenet", "dlib"} <= set(options("face_encoder"))
    assert {"voice_encoder", "face_decoder"} <= set(options("model"))
    assert {"speech2face", "face_decoder"} <= set(options("loss"))


@pytest.mark.parametrize("name", options("face_encoder"))
def test_face_encoder_config_instantiates_without_weight_files(name, tmp_path, monkeypatch):
    monkeypatch.setenv("S2F_HOME", str(tmp_path))  # an empty cache
    monkeypatch.setenv("S2F_OFFLINE", "1")
    cfg = load("face_encoder", name)
    encoder = instantiate(cfg)
    assert isinstance(encoder, FaceEncoder)
    assert encoder.dim == cfg.dim


@pytest.mark.parametrize("name", options("model"))
@pytest.mark.parametrize("face_encoder, dim", [("dlib", 128), (None, 4096)])
def test_model_config_follows_the_face_encoder_dim(name, face_encoder, dim):
    root = {"model": load("model", name)}
    if face_encoder is not None:
        root["face_encoder"] = load("face_encoder", face_encoder)
    cfg = OmegaConf.create(root)
    model = instantiate(cfg.model)
    if isinstance(model, AttributeClassifier):  # takes face crops, not features
        assert model(torch.rand(1, 3, model.config.image_size, model.config.image_size))
        return
    assert isinstance(model, VoiceEncoder | GE2EVoiceEncoder | FaceDecoder)
    if isinstance(model, VoiceEncoder | GE2EVoiceEncoder):
        assert model.out_dim == dim
        if name == "voice_encoder":
            assert model.fc1.in_features == 29_184
    else:
        assert model.fc_in.in_features == dim and model.fc_in.out_features == 1000


def test_loss_configs_instantiate_and_run():
    paper = load("loss", "speech2face")
    assert (paper.lambda1, paper.lambda2, paper.temperature) == (0.025, 200.0, 2.0)
    decoder = FaceDecoder(16, landmark_hidden=[8], texture_channels=16, min_channels=8)
    loss = instantiate(paper)(f_dec=decoder.fc_in, f_vgg=None)
    assert isinstance(loss, Speech2FaceLoss) and loss.lambda1 == 0.025
    assert loss(torch.randn(2, 16), torch.randn(2, 16))["total"] > 0
    decoder_loss = instantiate(load("loss", "face_decoder"))(face_encoder=None)
    assert isinstance(decoder_loss, FaceDecoderLoss)

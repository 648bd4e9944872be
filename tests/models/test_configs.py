"""Every config in configs/model, configs/face_encoder and configs/loss instantiates."""

from __future__ import annotations

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from speech2face.config import config_dir
from speech2face.models import FaceEncoder

FACE_ENCODER_CONFIGS = sorted(p.stem for p in (config_dir() / "face_encoder").glob("*.yaml"))


@pytest.mark.parametrize("name", FACE_ENCODER_CONFIGS)
def test_face_encoder_config_instantiates(name):
    cfg = OmegaConf.load(config_dir() / "face_encoder" / f"{name}.yaml")
    encoder = instantiate(cfg)
    assert isinstance(encoder, FaceEncoder)
    assert encoder.dim > 0

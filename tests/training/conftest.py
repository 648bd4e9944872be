"""Fixtures for training tests: the preprocessed synthetic corpus of tests/data (built once
per session by the real ``s2f-preprocess``), a tiny face decoder checkpoint, and the
command-line arguments of a short CPU run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.data.conftest import corpus, preprocessed, run_s2f  # noqa: F401 (shared fixtures)

DECODER_SIZE = 56  # portraits of the tests' decoder: 14 -> 28 -> 56, two upsamplings
FEATURE_DIM = 128  # dlib's features, what the shards hold


def run_args(data_root: Path, out: Path, task: str, *extra: str) -> list[str]:
    """The documented invocation with debug=cpu, shrunk further for tests."""
    return [
        f"task={task}",
        f"data.root={data_root}/",
        "face_encoder=dlib",
        "debug=cpu",
        f"output_dir={out}/",
        f"model.decoder.image_size={DECODER_SIZE}",
        "trainer.batch_size=2",
        "trainer.max_steps=4",
        "trainer.val_every=2",
        "trainer.ckpt_every=2",
        "trainer.log_every=1",
        "trainer.image_every=2",
        "trainer.num_images=2",
        "trainer.val_batches=2",
        "trainer.progress=false",
        "trainer.mean_geometry_samples=16",
        *extra,
    ]


@pytest.fixture(scope="session")
def decoder_checkpoint(tmp_path_factory) -> Path:
    """An untrained tiny face decoder for 128-D features, saved as a model checkpoint."""
    import torch

    from speech2face.models import FaceDecoder, save_checkpoint

    torch.manual_seed(0)
    decoder = FaceDecoder(
        feature_dim=FEATURE_DIM,
        landmark_hidden=[16],
        image_size=DECODER_SIZE,
        texture_channels=16,
        min_channels=8,
    )
    return save_checkpoint(decoder, tmp_path_factory.mktemp("decoder") / "decoder.pt")

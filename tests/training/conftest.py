"""Fixtures for training tests: the preprocessed synthetic corpus of tests/data (built once
per session by the real ``s2f-preprocess``), a tiny face decoder checkpoint, and the
command-line arguments of a short CPU run."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

DECODER_SIZE = 56  # portraits of the tests' decoder: 14 -> 28 -> 56, two upsamplings
FEATURE_DIM = 128  # dlib's features, what the shards hold


def free_port() -> int:
    """A TCP port free on this machine now (for a process group's rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def recording_run(overrides: list[str]) -> Iterator:
    """``s2f-train overrides`` fitted in this process (a rank when the environment names
    one), its trainer recording the keys of every batch it trained on (``trainer.keys``);
    the process group is torn down on leaving."""
    from speech2face.config import compose
    from speech2face.training import Trainer, distributed

    class Recording(Trainer):
        keys: list[str] = []

        def next_batch(self, batches):
            batch, wait = super().next_batch(batches)
            self.keys.extend(batch["key"])
            return batch, wait

    cfg = compose("train", overrides)
    dist = distributed.setup("cpu")
    try:
        trainer = Recording(cfg, dist)
        trainer.fit()
        yield trainer
    finally:
        distributed.cleanup()


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

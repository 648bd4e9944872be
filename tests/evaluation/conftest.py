"""Fixtures for evaluation tests: a voice checkpoint trained for a few steps by the real
``s2f-train`` on the tests' preprocessed synthetic corpus (which has val and test splits
and gender and age labels)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.data.conftest import corpus, preprocessed, run_s2f  # noqa: F401 (shared fixtures)
from tests.training.conftest import decoder_checkpoint, run_args  # noqa: F401


@pytest.fixture(scope="session")
def voice_run(preprocessed, decoder_checkpoint, tmp_path_factory) -> Path:  # noqa: F811
    """A tiny voice run's output directory (``checkpoints/last.pt`` is the bundle)."""
    out = tmp_path_factory.mktemp("voice") / "run"
    result = run_s2f(
        "train",
        *run_args(preprocessed, out, "voice", f"decoder_checkpoint={decoder_checkpoint}"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def eval_args(checkpoint: Path, data_root: Path, out: Path, *extra: str) -> list[str]:
    """The documented invocation, with few resamples and no progress bar."""
    return [
        f"checkpoint={checkpoint}",
        f"data.root={data_root}/",
        f"output_dir={out}/",
        "bootstrap_resamples=50",
        "gallery_size=3",
        "batch_size=4",
        "progress=false",
        *extra,
    ]

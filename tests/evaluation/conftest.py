"""Fixtures for evaluation tests: a voice checkpoint trained for a few steps by the real
``s2f-train`` on the tests' preprocessed synthetic corpus (which has val and test splits
and gender and age labels)."""

from __future__ import annotations

from pathlib import Path


def eval_args(checkpoint: Path, data_root: Path, out: Path, *extra: str) -> list[str]:
    """The documented invocation, with few resamples, no progress bar and no real voices
    (a later ``real_voices=`` in ``extra`` wins)."""
    return [
        f"checkpoint={checkpoint}",
        f"data.root={data_root}/",
        f"output_dir={out}/",
        "bootstrap_resamples=50",
        "gallery_size=3",
        "batch_size=4",
        "progress=false",
        "real_voices=null",  # tests/evaluation/test_real_voices.py runs them
        *extra,
    ]

"""The session fixtures several test directories share, defined once (and so built once
per run): the synthetic corpus with its injected bad inputs, its preprocessed shards, a tiny
face decoder, a tiny voice run trained on them, and that run's checkpoint.

``tests/conftest.py`` loads this module as a plugin. Tests that change one of these outputs
work on a copy. Helpers (commands, arguments) stay in the conftest of their directory.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from speech2face.data.synthetic import make_corpus
from tests.data.conftest import (
    CLIPS_PER_SPEAKER,
    NUM_SPEAKERS,
    SEED,
    Corpus,
    _bad_inputs,
    _failure_key,
    contract_args,
    run_options,
    run_s2f,
)
from tests.training.conftest import DECODER_SIZE, FEATURE_DIM, run_args


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Corpus:
    root = tmp_path_factory.mktemp("corpus")
    clips = make_corpus(root, NUM_SPEAKERS, CLIPS_PER_SPEAKER, seed=SEED)
    good_rows = list(csv.reader(clips.open()))
    bad = _bad_inputs(root / "videos", good_rows[0][0], good_rows[0])
    # Good and bad rows alternate, then the remaining bad ones follow.
    lines: list[str] = []
    expected: dict[str, str] = {}
    good_lines = [",".join(row) for row in good_rows]
    for i in range(max(len(good_lines), len(bad))):
        if i < len(good_lines):
            lines.append(good_lines[i])
        if i < len(bad):
            text, reason = bad[i]
            lines.append(text)
            expected[_failure_key(len(lines), text, reason)] = reason
    clips.write_text("\n".join(lines) + "\n")
    return Corpus(root, clips, root / "videos", root / "labels.csv", good_rows, expected)


@pytest.fixture(scope="session")
def preprocessed(corpus, tmp_path_factory) -> Path:
    """The corpus preprocessed by ``s2f-preprocess`` (uninterrupted): the reference output."""
    out = tmp_path_factory.mktemp("reference") / "out"
    result = run_s2f("preprocess", *contract_args(corpus, out, *run_options(corpus)))
    assert result.returncode == 0, result.stderr[-2000:]
    return out


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


@pytest.fixture(scope="session")
def voice_run(preprocessed, decoder_checkpoint, tmp_path_factory) -> Path:
    """A tiny voice run's output directory (``checkpoints/last.pt`` is the bundle)."""
    out = tmp_path_factory.mktemp("voice") / "run"
    result = run_s2f(
        "train",
        *run_args(preprocessed, out, "voice", f"decoder_checkpoint={decoder_checkpoint}"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.fixture(scope="session")
def checkpoint(voice_run) -> Path:
    """The voice bundle: 3 s windows (48,000 samples), 56x56 portraits, 128-D features."""
    return voice_run / "checkpoints" / "last.pt"

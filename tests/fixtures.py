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


@pytest.fixture(scope="session")
def edited_checkpoints(checkpoint, tmp_path_factory) -> dict[str, tuple[Path, str]]:
    """Copies of ``checkpoint`` with one field edited: name -> (path, what the one-line
    refusal says). Each must be refused before anything is built from it."""
    import torch

    folder = tmp_path_factory.mktemp("edited")

    def audio(**values):
        return lambda payload: payload["bundle"]["audio"].update(values)

    def other_shape(payload):  # the weights of a model with another output width
        state = payload["state_dict"]
        state["fc2.weight"] = torch.zeros(64, state["fc2.weight"].shape[1])
        state["fc2.bias"] = torch.zeros(64)

    clip = "bundle.audio.clip_samples must be a whole number from 16,000 to 480,000"
    edits = {
        "huge-clip": (audio(clip_samples=400_000_000), f"{clip}, not 400000000"),
        "negative-clip": (audio(clip_samples=-48_000), f"{clip}, not -48000"),
        "text-clip": (audio(clip_samples="48000"), f"{clip}, not '48000'"),
        "no-face-encoder": (lambda p: p["bundle"].pop("face_encoder"),
                            "bundle.face_encoder is missing"),
        "other-shape": (other_shape, "size mismatch for fc2.weight: the file holds (64, 64)"),
        "huge-width": (lambda p: p["config"].update(hidden_dim=10**9),
                       "config.hidden_dim must be a whole number from 1 to 16,384"),
        "text-image-size": (lambda p: p["bundle"]["decoder"]["config"].update(image_size="56"),
                            "bundle.decoder.config.image_size must be a whole number"),
    }  # fmt: skip
    made = {}
    for name, (edit, says) in edits.items():
        payload = torch.load(checkpoint, map_location="cpu", weights_only=True)
        edit(payload)
        torch.save(payload, folder / f"{name}.pt")
        made[name] = (folder / f"{name}.pt", says)
    return made

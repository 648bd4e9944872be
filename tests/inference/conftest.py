"""Fixtures for inference tests: the tiny voice checkpoint of the evaluation tests (trained
by the real ``s2f-train`` on the tests' synthetic corpus), voices synthesised in NumPy, and
``s2f-infer`` run as users run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from speech2face.data.synthetic import random_identity, synthesize_voice

PROG = "s2f-infer"
ERROR = f"{PROG}: error:"


@pytest.fixture(scope="session")
def artist(checkpoint):
    """A float32 :class:`Portraitist` of ``checkpoint`` (the reference for the CLI's files)."""
    from speech2face.inference import Portraitist

    return Portraitist.from_checkpoint(checkpoint, "cpu", fast=False)


def voice(seconds: float, rate: int = 16_000, seed: int = 0) -> np.ndarray:
    """Speech-like audio of one synthetic speaker: ``(round(seconds * rate),)`` float64."""
    rng = np.random.default_rng(seed)
    identity = random_identity(rng, f"speaker{seed}", "AAAAAAAAAAA")
    wav, _ = synthesize_voice(identity, seconds, rng, rate)
    return 0.8 * wav[: int(round(seconds * rate))] / np.abs(wav).max()


def buzz(seconds: float, rate: int = 16_000, pitch: float = 140.0) -> np.ndarray:
    """A voiced, never silent sound (harmonics of a gliding pitch): ``(T,)`` float64."""
    t = np.arange(int(round(seconds * rate))) / rate
    phase = 2 * np.pi * (pitch * t + 8.0 * np.sin(2 * np.pi * 0.5 * t))
    wav = sum(np.sin(k * phase) / k for k in range(1, 12))
    return 0.5 * wav / np.abs(wav).max()


def infer(*args: str, cwd: Path | None = None, env: dict | None = None):
    """``s2f-infer ARGS`` in a subprocess (the installed script, else ``python -m``)."""
    script = Path(sys.executable).with_name(PROG)
    command = [str(script)] if script.exists() else [sys.executable, "-m", "speech2face", "infer"]
    return subprocess.run(
        [*command, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def error_lines(stderr: str) -> list[str]:
    lines = stderr.strip().splitlines()
    assert all(line.startswith(ERROR) or " failed" in line for line in lines), stderr
    return [line for line in lines if line.startswith(ERROR)]


@pytest.fixture(scope="session")
def decoder_only(checkpoint, tmp_path_factory) -> Path:
    """A training checkpoint of this version holding the voice run's face decoder alone
    (what ``s2f-train task=decoder`` writes)."""
    import torch

    payload = torch.load(checkpoint, map_location="cpu", weights_only=True)
    decoder = payload["bundle"].pop("decoder")
    payload.update(kind=decoder["kind"], config=decoder["config"], state_dict=decoder["state_dict"])
    payload["training"]["task"] = "decoder"
    path = tmp_path_factory.mktemp("decoder_only") / "last.pt"
    torch.save(payload, path)
    return path

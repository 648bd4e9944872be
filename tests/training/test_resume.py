"""A run killed with SIGKILL and started again continues from its last checkpoint and ends
with exactly the weights of an uninterrupted run (CPU, fixed seed)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
import torch

from speech2face.training import read_training_checkpoint
from tests.data.conftest import run_s2f, s2f_command
from tests.training.conftest import run_args

pytestmark = pytest.mark.slow
STEPS = 8


def test_killed_run_resumes_to_the_same_weights(preprocessed, decoder_checkpoint, tmp_path):
    def args(out):
        return run_args(
            preprocessed, out, "voice", f"decoder_checkpoint={decoder_checkpoint}",
            f"trainer.max_steps={STEPS}", "trainer.val_every=4",
        )  # fmt: skip

    reference, killed = tmp_path / "reference", tmp_path / "killed"
    result = run_s2f("train", *args(reference))
    assert result.returncode == 0, result.stderr[-3000:]

    process = subprocess.Popen(
        [*s2f_command("train"), *args(killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    first = killed / "checkpoints" / "step-00000002.pt"
    deadline = time.monotonic() + 120
    while not first.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert first.exists(), "the run ended before its first checkpoint"
    assert not (killed / "checkpoints" / f"step-{STEPS:08d}.pt").exists(), "killed too late"

    result = run_s2f("train", *args(killed))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming from step" in result.stderr

    want = read_training_checkpoint(reference / "checkpoints" / "last.pt")
    got = read_training_checkpoint(killed / "checkpoints" / "last.pt")
    assert got["training"]["step"] == want["training"]["step"] == STEPS
    assert (got["training"]["epoch"], got["training"]["batch_in_epoch"]) == (
        want["training"]["epoch"],
        want["training"]["batch_in_epoch"],
    )
    assert want["state_dict"].keys() == got["state_dict"].keys()
    for name, tensor in want["state_dict"].items():
        assert torch.equal(tensor, got["state_dict"][name]), name
    for index, state in want["training"]["optimizer"]["state"].items():
        for key, value in state.items():
            assert torch.equal(value, got["training"]["optimizer"]["state"][index][key])


def test_a_damaged_last_checkpoint_is_one_line(preprocessed, decoder_checkpoint, tmp_path):
    """A run whose last checkpoint holds an optimizer state of other shapes (edited, or
    written by another version) stops in one line instead of torch's traceback."""
    out = tmp_path / "run"

    def args(steps):
        return run_args(
            preprocessed, out, "voice", f"decoder_checkpoint={decoder_checkpoint}",
            f"trainer.max_steps={steps}", "trainer.val_every=2",
        )  # fmt: skip

    result = run_s2f("train", *args(2))
    assert result.returncode == 0, result.stderr[-3000:]
    last = out / "checkpoints" / "last.pt"
    payload = torch.load(last, weights_only=True)
    payload["training"]["optimizer"]["param_groups"][0]["params"].append(10_000)
    last.unlink()  # a link to the step file: replace it, keep the step file as it was
    torch.save(payload, last)
    before = sorted(p.name for p in (out / "checkpoints").iterdir())
    result = run_s2f("train", *args(4), "resume_changes=continue")
    assert result.returncode == 2, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    assert "its last checkpoint cannot be resumed" in lines[-1], result.stderr
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == before

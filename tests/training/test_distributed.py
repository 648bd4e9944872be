"""Two CPU processes with gloo: identical weights after a few steps, different samples."""

from __future__ import annotations

import json

import pytest
import torch
import torch.multiprocessing as mp

from tests.training.conftest import free_port, recording_run, run_args

pytestmark = pytest.mark.slow
WORLD = 2


def _worker(rank: int, overrides: list[str], port: int, out: str) -> None:
    import os

    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(WORLD),
    )
    torch.set_num_threads(1)
    from speech2face.training.checkpoint import unwrap

    with recording_run(overrides) as trainer:
        torch.save(unwrap(trainer.model).state_dict(), f"{out}/rank{rank}.pt")
        with open(f"{out}/rank{rank}.json", "w") as f:
            json.dump(trainer.keys, f)


def test_two_processes_agree(preprocessed, decoder_checkpoint, tmp_path):
    overrides = run_args(
        preprocessed, tmp_path / "run", "voice", f"decoder_checkpoint={decoder_checkpoint}",
        "trainer.batch_size=1", "trainer.max_steps=2",  # one epoch: 4 train samples, 2 a rank
    )  # fmt: skip
    mp.spawn(_worker, args=(overrides, free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    states = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    for name, tensor in states[0].items():
        assert torch.equal(tensor, states[1][name]), name
    saved = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert saved["training"]["step"] == 2 and saved["training"]["world_size"] == WORLD
    for name, tensor in saved["state_dict"].items():  # rank 0 wrote what both hold
        assert torch.equal(tensor, states[0][name]), name
    keys = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]
    assert len(keys[0]) == len(keys[1]) == 2
    assert not set(keys[0]) & set(keys[1]), keys
    assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file()

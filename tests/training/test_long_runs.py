"""What long runs need: a resume with other settings refuses in one line or, asked to,
continues without a jump in the learning rate; a run resumed on another number of
processes reads on from the same sample; the attribute task with one label trains under
two processes; the paper preset composes to the paper's window, precision and batch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from speech2face.config import compose
from speech2face.data.shards import iter_tar_samples, json_bytes, write_tar
from speech2face.errors import ConfigError
from speech2face.training import read_training_checkpoint
from tests.training.conftest import free_port, recording_run, run_args

pytestmark = pytest.mark.slow


def _run(overrides: list[str], keys_file: str | None = None) -> None:
    """One process of a run (a rank under WORLD_SIZE), recording the keys it trained on."""
    with recording_run(overrides) as trainer:
        if keys_file is not None:
            Path(keys_file).write_text(json.dumps(trainer.keys))


def _worker(rank: int, world: int, overrides: list[str], port: int, out: str) -> None:
    import os

    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
        LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
    )  # fmt: skip
    torch.set_num_threads(1)
    _run(overrides, f"{out}/rank{rank}.json")


def _lr(path: Path) -> float:
    return float(read_training_checkpoint(path)["training"]["optimizer"]["param_groups"][0]["lr"])


def test_a_longer_cosine_run_refuses_or_continues_without_a_rise(
    preprocessed, decoder_checkpoint, tmp_path
):
    def args(out, steps, *extra):
        return run_args(
            preprocessed, out, "voice", f"decoder_checkpoint={decoder_checkpoint}",
            "optim=adamw_cosine", f"trainer.max_steps={steps}", "trainer.ckpt_every=2",
            "trainer.val_every=100", "trainer.keep_last=10", "trainer.num_images=0", *extra,
        )  # fmt: skip

    first = tmp_path / "first"
    _run(args(first, 4))
    middle = first / "checkpoints" / "step-00000002.pt"
    peak, at_two = 1e-3, _lr(middle)
    assert 0 < at_two < peak  # half-way down a 4-step cosine
    longer = tmp_path / "longer"
    with pytest.raises(ConfigError) as refused:
        _run(args(longer, 8, f"resume={middle}"))
    line = str(refused.value)
    assert "\n" not in line
    assert "trainer.max_steps 4 -> 8" in line and "optim.scheduler.T_max 4 -> 8" in line
    assert "resume_changes=continue" in line

    _run(args(longer, 8, f"resume={middle}", "resume_changes=continue"))
    lrs = [_lr(longer / "checkpoints" / f"step-{s:08d}.pt") for s in (4, 6)]
    assert at_two > lrs[0] > lrs[1] > 0  # falling from where it was, not from the peak
    assert _lr(longer / "checkpoints" / "step-00000008.pt") == 0.0  # the new run's end


def test_a_run_resumed_on_one_process_reads_on_from_the_same_sample(
    preprocessed, decoder_checkpoint, tmp_path
):
    """Two processes read 1 sample each of the 4-sample epoch; resumed on one process,
    the run reads the other 2 before the epoch ends: the epoch holds each sample once."""
    run = tmp_path / "run"

    def args(steps, *extra):
        return run_args(
            preprocessed, run, "voice", f"decoder_checkpoint={decoder_checkpoint}",
            "trainer.batch_size=1", f"trainer.max_steps={steps}", "trainer.num_images=0",
            "trainer.val_every=100", *extra,
        )  # fmt: skip

    mp.spawn(_worker, args=(2, args(1), free_port(), str(tmp_path)), nprocs=2, join=True)
    first = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    with pytest.raises(ConfigError, match="world_size 2 -> 1"):
        _run(args(3))
    _run(args(3, "resume_changes=continue"), str(tmp_path / "resumed.json"))
    resumed = json.loads((tmp_path / "resumed.json").read_text())
    epoch = first[0] + first[1] + resumed[:2]
    assert len(set(epoch)) == 4, epoch
    saved = read_training_checkpoint(run / "checkpoints" / "last.pt")["training"]
    assert saved["world_size"] == 1 and saved["data"]["samples"] == 4


def _gender_only(source: Path, target: Path) -> Path:
    """A copy of the shards whose labels hold only the gender."""
    index = json.loads((source / "shards.json").read_text())
    (target / "shards").mkdir(parents=True)
    for entries in index.values():
        for entry in entries:
            samples = []
            with open(source / entry["path"], "rb") as f:
                for key, members in iter_tar_samples(f):
                    meta = json.loads(members["json"])
                    meta["labels"] = {"gender": (meta.get("labels") or {}).get("gender")}
                    samples.append((key, {**members, "json": json_bytes(meta)}))
            write_tar(target / entry["path"], samples)
    (target / "shards.json").write_text(json.dumps(index))
    return target


def test_attributes_with_gender_only_train_under_two_processes(preprocessed, tmp_path):
    shards = _gender_only(preprocessed, tmp_path / "shards")
    overrides = run_args(
        shards, tmp_path / "run", "attributes", "trainer.batch_size=1", "trainer.max_steps=2",
        "trainer.num_images=0",
    )  # fmt: skip
    mp.spawn(_worker, args=(2, overrides, free_port(), str(tmp_path)), nprocs=2, join=True)
    saved = read_training_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert saved["training"]["step"] == 2 and saved["training"]["world_size"] == 2
    assert saved["bundle"]["attributes"] == ["gender"]


def test_the_paper_preset_is_the_papers_window_precision_and_batch():
    cfg = compose("train", ["task=voice", "experiment=paper", "output_dir=x/"])
    assert cfg.data.window == "first" and cfg.data.clip_samples == 96_000
    assert cfg.trainer.precision == "fp32"
    assert cfg.trainer.global_batch == 8 and cfg.trainer.grad_accum == 1
    from speech2face.training.trainer import TrainerConfig, per_process_batch

    tcfg = TrainerConfig(**{k: v for k, v in cfg.trainer.items() if k != "_target_"})
    assert [per_process_batch(tcfg, world) for world in (1, 2, 4, 8)] == [8, 4, 2, 1]
    with pytest.raises(ConfigError, match="does not divide"):
        per_process_batch(tcfg, 3)


def _fetching_rank(rank: int, port: int, home: str, url: str, digest: str, size: int) -> None:
    """A rank that fetches the weights the way training does, then loads them as a lazily
    built encoder would; every real download is logged to ``home/downloads``."""
    import os

    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
        LOCAL_RANK=str(rank), WORLD_SIZE="2", S2F_HOME=home,
    )  # fmt: skip
    os.environ.pop("S2F_OFFLINE", None)
    from speech2face import weights
    from speech2face.training import distributed
    from speech2face.training.trainer import fetch_weights_once

    weights.REGISTRY["test_weights"] = weights.WeightsEntry(
        name="test_weights", filename="test.pth", url=url, sha256=digest, size=size,
        description="test file",
    )  # fmt: skip
    download = weights._download

    def logged(*args, **kwargs):
        with open(f"{home}/downloads", "a") as log:
            log.write(f"{rank}\n")
        return download(*args, **kwargs)

    weights._download = logged
    dist = distributed.setup("cpu")
    try:
        fetch_weights_once("test_weights", dist.is_main)
        assert weights.resolve("test_weights").read_bytes() == bytes(range(256)) * 4000
    finally:
        distributed.cleanup()


def test_weights_are_fetched_once_by_rank_0(tmp_path):
    import hashlib

    payload = bytes(range(256)) * 4000
    source = tmp_path / "source.pth"
    source.write_bytes(payload)
    home = tmp_path / "home"
    home.mkdir()
    digest = hashlib.sha256(payload).hexdigest()
    args = (free_port(), str(home), source.as_uri(), digest, len(payload))
    mp.spawn(_fetching_rank, args=args, nprocs=2, join=True)
    assert (home / "downloads").read_text().split() == ["0"]


def test_precision_auto_is_fp32_on_a_cpu():
    from speech2face.training.trainer import pick_precision

    cpu = torch.device("cpu")
    assert pick_precision("auto", cpu) == "fp32"
    assert pick_precision("bf16", cpu) == "bf16"  # emulated on a CPU: slow but correct
    assert pick_precision("fp32", cpu) == "fp32"


@pytest.mark.gpu
def test_precision_auto_follows_the_cards_bf16():
    from speech2face.training.trainer import pick_precision

    card = torch.device("cuda:0")
    has = torch.cuda.is_bf16_supported(including_emulation=False)
    assert pick_precision("auto", card) == ("bf16" if has else "fp32")
    if not has:
        with pytest.raises(ConfigError, match="no bfloat16 arithmetic"):
            pick_precision("bf16", card)

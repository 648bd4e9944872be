"""Time to the first training step after a resume at 90 % of an epoch, against a fresh
start, on a generated shard set of about 1.3 GB (4,000 samples of 10 s audio, 40 shards;
written to a temporary folder, removed after).

1. Loader: a new :class:`ShardDataset` and loader (2 workers, batches of 8) to its first
   batch: fresh; placed at 90 % of the epoch with :meth:`ShardDataset.set_resume` (each
   worker skips to its block through the shard index, reading only tar headers); and the
   reference, what a resume did before: from the epoch's start, batches read and dropped up
   to 90 %, then the next (fresh and resumed: the best of 3 starts; the machine may be
   busy with other work). The resumed first batch is checked to hold the samples the
   reference reads there.
2. Trainer: ``task=voice`` with ``debug=cpu`` (tiny models, 3 s windows, 128-D features),
   a checkpoint placed at 90 % of the epoch (2 steps trained, then the data position of a
   run that had read 450 batches of 8 written into it); the time from building the
   :class:`Trainer` to its first training step: a fresh run, the run resumed from that
   checkpoint, and the same without its data position (the trainer then reads the epoch
   again up to the saved batch, as it did before positions were recorded).

Run by hand: ``python -m benchmarks resume`` (a few minutes on 2 cores).
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from speech2face.audio import SAMPLE_RATE
from speech2face.data import ShardDataset, build_loader
from speech2face.data.shards import encode_wav, json_bytes, npy_bytes, write_tar

SAMPLES = 4000
PER_SHARD = 100
SECONDS = 10.0
FEATURE_DIM = 128  # dlib's width (the trainer part uses face_encoder=dlib)
WORKERS = 2
BATCH = 8
AT = 0.9  # share of the epoch read before the resume
REPEATS = 3  # fresh and resumed starts: the best of this many (reading again: once)


def write_shards(root: Path) -> int:
    """The shard set; returns its size in bytes."""
    (root / "shards").mkdir(parents=True)
    rng = np.random.default_rng(0)
    pcm = (rng.normal(0, 3000, int(SECONDS * SAMPLE_RATE))).astype(np.int16)
    wav = encode_wav(pcm)
    feature = npy_bytes(rng.normal(size=FEATURE_DIM).astype(np.float16))
    entries, size = [], 0
    for s in range(SAMPLES // PER_SHARD):
        samples = []
        for i in range(PER_SHARD):
            key = f"s{s * PER_SHARD + i:06d}"
            meta = {"key": key, "speaker": f"p{i % 50}", "split": "train"}
            samples.append((key, {"json": json_bytes(meta), "wav": wav, "feat.npy": feature}))
        path = f"shards/train-{s:06d}.tar"
        write_tar(root / path, samples)
        size += (root / path).stat().st_size
        entries.append({"path": path, "samples": PER_SHARD})
    (root / "shards.json").write_text(json.dumps({"train": entries}))
    return size


def first_batch(root: Path, skip_batches: int = 0, resume_batches: int = 0):
    """(seconds to the batch, its keys): after reading and dropping ``skip_batches``, or
    placed after ``resume_batches`` through :meth:`ShardDataset.set_resume`."""
    started = time.perf_counter()
    ds = ShardDataset(str(root), "train", seed=1)
    if resume_batches:
        yielded = [len(range(w, resume_batches, WORKERS)) * BATCH for w in range(WORKERS)]
        size = ds.shuffle_buffer
        cursors = np.array([[k, k // size, k % size] for k in yielded])
        ds.set_resume(0, None, cursors, rotate=resume_batches)
    loader = build_loader(ds, batch_size=BATCH, num_workers=WORKERS)
    iterator = iter(loader)
    for _ in range(skip_batches):
        next(iterator)
    batch = next(iterator)
    return time.perf_counter() - started, batch["key"]


class _FirstStep(Exception):
    """Raised at the first training step: the clock stops there."""


def first_step(overrides: list[str]) -> tuple[float, int]:
    """(seconds from building the trainer to its first training step, the step it resumed
    from) of a ``task=voice`` run."""
    from speech2face.config import compose
    from speech2face.training import Trainer

    cfg = compose("train", overrides)
    started = time.perf_counter()
    trainer = Trainer(cfg)
    step = trainer.task.step

    def stop(model, batch):
        step(model, batch)
        raise _FirstStep

    trainer.task.step = stop
    with contextlib.suppress(_FirstStep):
        trainer.fit()
    resumed = trainer.resume_from["training"]["step"] if trainer.resume_from else 0
    return time.perf_counter() - started, resumed


def bench_trainer(root: Path, folder: Path) -> None:
    import torch

    from speech2face.config import compose
    from speech2face.models import FaceDecoder, save_checkpoint
    from speech2face.training import Trainer
    from speech2face.training.checkpoint import read_training_checkpoint

    torch.manual_seed(0)
    decoder = FaceDecoder(feature_dim=128, landmark_hidden=[16], image_size=56,
                          texture_channels=16, min_channels=8)  # fmt: skip
    decoder_path = save_checkpoint(decoder, folder / "decoder.pt")

    def args(out: Path, steps: int, *extra: str) -> list[str]:
        return [
            "task=voice", f"data.root={root}/", "face_encoder=dlib", "debug=cpu",
            f"decoder_checkpoint={decoder_path}", f"output_dir={out}/",
            "model.decoder.image_size=56", f"trainer.batch_size={BATCH}",
            f"trainer.num_workers={WORKERS}", f"trainer.max_steps={steps}",
            f"trainer.ckpt_every={steps}", f"trainer.val_every={steps}", "trainer.log_every=50",
            "trainer.num_images=0", "trainer.progress=false", *extra,
        ]  # fmt: skip

    # A checkpoint placed at 90 % of the epoch: 2 steps trained, then the data position
    # a run that had read 450 batches of 8 with 2 loader workers would have recorded
    # (training 450 steps of even the tiny model takes a 2-core CPU many minutes).
    Trainer(compose("train", args(folder / "run", 2))).fit()
    last = folder / "run" / "checkpoints" / "last.pt"
    payload = read_training_checkpoint(last)
    batches = int(AT * SAMPLES / BATCH)
    size = int(compose("train", args(folder / "run", 2)).data.shuffle_buffer)
    yielded = [len(range(w, batches, WORKERS)) * BATCH for w in range(WORKERS)]
    training = payload["training"]
    training["batch_in_epoch"] = batches
    training["data"]["samples"] = batches * BATCH
    training["data"]["cursors"] = torch.tensor([[k, k // size, k % size] for k in yielded])
    last.unlink()
    torch.save(payload, last)
    # The same checkpoint without its data position: the way a resume read before.
    old = folder / "old" / "checkpoints"
    old.mkdir(parents=True)
    training["data"] = None
    torch.save(payload, old / "last.pt")

    more = ("trainer.max_steps=20", "resume_changes=continue")
    fresh = min(first_step(args(folder / "fresh", 20))[0] for _ in range(REPEATS))
    resumed = min(first_step(args(folder / "run", 2, *more))[0] for _ in range(REPEATS))
    again, _ = first_step(args(folder / "old", 2, *more))
    print(f"{'trainer start (debug=cpu, task=voice)':<40} {'first step':>12}")
    print(f"{'fresh':<40} {fresh:>10.2f} s")
    print(f"{f'resumed at {AT:.0%} (shard index)':<40} {resumed:>10.2f} s")
    print(f"{f'resumed at {AT:.0%}, reading the epoch again':<40} {again:>10.2f} s")
    print(
        f"resumed / fresh: {resumed / fresh:.2f}; reading again / resumed: {again / resumed:.0f}x"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        started = time.perf_counter()
        size = write_shards(root)
        print(f"shard set: {SAMPLES} samples, {size / 1e9:.2f} GB, written in "
              f"{time.perf_counter() - started:.0f} s")  # fmt: skip
        at = int(AT * SAMPLES / BATCH)
        fresh = min(first_batch(root)[0] for _ in range(REPEATS))
        resumed = min(first_batch(root, resume_batches=at)[0] for _ in range(REPEATS))
        _, keys = first_batch(root, resume_batches=at)
        again, expected = first_batch(root, skip_batches=at)
        print(f"{'start':<40} {'first batch':>12}")
        print(f"{'fresh':<40} {fresh:>10.2f} s")
        print(f"{f'resumed at {AT:.0%} (shard index)':<40} {resumed:>10.2f} s")
        print(f"{f'read again to {AT:.0%} (reference)':<40} {again:>10.2f} s")
        print(f"resumed / fresh: {resumed / fresh:.2f}; read again / resumed: {again / resumed:.0f}x;"
              f" re-read {AT * size / 1e9:.2f} GB; same batch: {keys == expected}")  # fmt: skip
        print()
        bench_trainer(root, root / "runs")


if __name__ == "__main__":
    main()

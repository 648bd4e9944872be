"""Time to the first training batch after a resume at 90 % of an epoch, against a fresh
start, on a generated shard set of about 1.3 GB (4,000 samples of 10 s audio and a 4,096-D
feature, 40 shards; written to a temporary folder, removed after).

- fresh: a new :class:`ShardDataset` and loader (2 workers, batches of 8), to the first batch;
- resumed: the same, placed at 90 % of the epoch with :meth:`ShardDataset.set_resume` (each
  loader worker skips to its block through the shard index, reading only tar headers);
- read again (the reference, what a resume did before): the loader from the epoch's start,
  its batches read and dropped up to 90 %, then the next batch.

The resumed first batch is checked to hold the samples the reference reads at that point.
Run by hand: ``python -m benchmarks resume`` (about 2 minutes on 2 cores, most of it the
reference and writing the shards).
"""

from __future__ import annotations

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
FEATURE_DIM = 4096
WORKERS = 2
BATCH = 8
AT = 0.9  # share of the epoch read before the resume


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


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        started = time.perf_counter()
        size = write_shards(root)
        print(f"shard set: {SAMPLES} samples, {size / 1e9:.2f} GB, written in "
              f"{time.perf_counter() - started:.0f} s")  # fmt: skip
        at = int(AT * SAMPLES / BATCH)
        fresh, _ = first_batch(root)
        resumed, keys = first_batch(root, resume_batches=at)
        again, expected = first_batch(root, skip_batches=at)
        print(f"{'start':<40} {'first batch':>12}")
        print(f"{'fresh':<40} {fresh:>10.2f} s")
        print(f"{f'resumed at {AT:.0%} (shard index)':<40} {resumed:>10.2f} s")
        print(f"{f'read again to {AT:.0%} (reference)':<40} {again:>10.2f} s")
        print(f"resumed / fresh: {resumed / fresh:.2f}; read again / resumed: {again / resumed:.0f}x;"
              f" re-read {AT * size / 1e9:.2f} GB; same batch: {keys == expected}")  # fmt: skip


if __name__ == "__main__":
    main()

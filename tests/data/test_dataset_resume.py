"""ShardDataset positions: a consumer resumed from its cursor yields exactly what it would
have; a run resumed with another layout reads the rest of the epoch, each sample once; a
skip reads only the headers of the samples before the position."""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch

from speech2face.data import ShardDataset, build_loader
from speech2face.data.shards import iter_tar_samples
from tests.data.test_dataset import fake_shards

SIZES = [5, 7, 3, 6, 4, 7]  # 32 samples in 6 shards


def consume(ds, batches: int | None, batch_size: int = 2, workers: int = 0):
    """(keys, wavs, last cursor per worker) of the first ``batches`` batches of a pass."""
    loader = build_loader(ds, batch_size=batch_size, num_workers=workers)
    keys, wavs, cursors = [], [], np.zeros((max(workers, 1), 3), dtype=np.int64)
    for index, batch in enumerate(loader):
        if batches is not None and index == batches:
            break
        keys += batch["key"]
        wavs += list(batch["wav"])
        worker, *where = batch["cursor"][-1].tolist()
        cursors[worker] = where
    return keys, wavs, cursors


def test_a_resumed_consumer_yields_what_it_would_have(tmp_path):
    fake_shards(tmp_path, SIZES, seconds=7.5)
    for workers in (0, 2):
        whole = ShardDataset(str(tmp_path), "train", shuffle_buffer=4, seed=3)
        whole.set_epoch(1)
        keys, wavs, _ = consume(whole, None, workers=workers)
        first = ShardDataset(str(tmp_path), "train", shuffle_buffer=4, seed=3)
        first.set_epoch(1)
        head, _, cursors = consume(first, 5, workers=workers)
        resumed = ShardDataset(str(tmp_path), "train", shuffle_buffer=4, seed=3)
        resumed.set_epoch(1)
        resumed.set_resume(1, None, cursors, rotate=5)
        tail, tail_wavs, _ = consume(resumed, None, workers=workers)
        assert head + tail == keys, workers
        for a, b in zip(tail_wavs, wavs[len(head) :], strict=True):
            assert torch.equal(a, b)  # the same random windows


def test_another_layout_reads_the_rest_of_the_epoch_once(tmp_path):
    """Two ranks x two workers read part of an epoch; one process with one worker reads
    the rest: together every sample exactly once."""
    keys = fake_shards(tmp_path, SIZES)
    read: Counter = Counter()
    cursors = []
    for rank in range(2):
        ds = ShardDataset(str(tmp_path), "train", shuffle_buffer=3, rank=rank, world_size=2)
        got, _, where = consume(ds, 3, batch_size=2, workers=2)
        read.update(got)
        cursors.append(where)
    later = ShardDataset(str(tmp_path), "train", shuffle_buffer=3, rank=0, world_size=1)
    done = later.consumed_positions(0, 2, 2, np.concatenate(cursors))
    assert done.sum() == sum(read.values()) == 12
    later.set_resume(0, done)
    rest, _, _ = consume(later, None, batch_size=1)
    read.update(rest)
    assert set(read) == keys and set(read.values()) == {1}


def test_a_skip_reads_only_headers(tmp_path):
    fake_shards(tmp_path, [50], seconds=6.0)
    path = tmp_path / "shards" / "train-000000.tar"

    class Counting:
        def __init__(self, f):
            self.f, self.read_bytes = f, 0

        def read(self, n=-1):
            data = self.f.read(n)
            self.read_bytes += len(data)
            return data

        def __getattr__(self, name):
            return getattr(self.f, name)

    with open(path, "rb") as f:
        counting = Counting(f)
        key, _ = next(iter_tar_samples(counting, skip=45, seekable=True))
    assert key == "sample00045"
    assert counting.read_bytes < path.stat().st_size / 10  # headers of 45 samples, not data

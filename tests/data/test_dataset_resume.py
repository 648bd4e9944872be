"""ShardDataset positions: a consumer resumed from its cursor yields exactly what it would
have; a run resumed with another layout reads the rest of the epoch, each sample once; a
skip reads only the headers of the samples before the position."""

from __future__ import annotations

import json
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


def test_batches_mix_videos_like_a_random_draw(tmp_path):
    """Shards whose consecutive rows are 4 segments of one video (as a source CSV lists
    them): the default shuffle's batches of 8 hold as few same-video pairs as batches drawn
    at random from the whole split (4,096 pairs drawn; expected share 3 / 1,023)."""
    from speech2face.data.shards import encode_wav, json_bytes, npy_bytes, write_tar

    (tmp_path / "shards").mkdir()
    wav = encode_wav(np.zeros(1600, np.int16))
    feature = npy_bytes(np.zeros(4, np.float16))
    entries = []
    for s in range(8):
        samples = []
        for i in range(128):
            n = s * 128 + i
            meta = {"key": f"k{n:05d}", "speaker": f"v{n // 4:04d}"}
            samples.append(
                (f"k{n:05d}", {"json": json_bytes(meta), "wav": wav, "feat.npy": feature})
            )
        write_tar(tmp_path / f"shards/train-{s:06d}.tar", samples)
        entries.append({"path": f"shards/train-{s:06d}.tar", "samples": 128})
    (tmp_path / "shards.json").write_text(json.dumps({"train": entries}))

    def same_share(batches: list[list[str]]) -> float:
        pairs = [(a, b) for batch in batches for i, a in enumerate(batch) for b in batch[i + 1 :]]
        return sum(a == b for a, b in pairs) / len(pairs)

    ds = ShardDataset(str(tmp_path), "train", clip_samples=1600)
    loader = build_loader(ds, batch_size=8, num_workers=0)
    batches = [batch["speaker"] for batch in loader]
    videos = [f"v{n // 4:04d}" for n in range(1024)]
    rng = np.random.default_rng(0)
    drawn = [list(rng.choice(videos, 8, replace=False)) for _ in range(len(batches))]
    shuffled, random_draw = same_share(batches), same_share(drawn)
    print(f"same-video pairs in a batch: default shuffle {shuffled:.4f}, random {random_draw:.4f}")
    assert shuffled <= 3 * 3 / 1023 and random_draw <= 3 * 3 / 1023


def test_the_first_window_is_the_start_of_each_segment(tmp_path):
    """window=first trains on each segment's first 6 s (the paper's), random on others."""
    from speech2face.audio import N_SAMPLES
    from speech2face.data.dataset import PCM_SCALE

    fake_shards(tmp_path, [3, 3], seconds=8.0)  # sample n's waveform is a ramp from n
    first = list(ShardDataset(str(tmp_path), "train", window="first", shuffle_buffer=0))
    for sample in first:
        n = int(sample["key"].removeprefix("sample"))
        start = torch.arange(n, n + N_SAMPLES) % 30_000
        assert torch.equal(sample["wav"], start.float() / PCM_SCALE)
    randomly = list(ShardDataset(str(tmp_path), "train", shuffle_buffer=0))
    assert any(not torch.equal(a["wav"], b["wav"]) for a, b in zip(first, randomly, strict=True))

"""ShardDataset: equal counts per rank, coverage across ranks x workers, epochs (set_epoch,
resumed runs, passes without it), windows, collate, HTTP, WebDataset."""

from __future__ import annotations

import functools
import http.server
import io
import json
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from speech2face.audio import N_SAMPLES, SAMPLE_RATE, fit_to_length
from speech2face.config import config_dir
from speech2face.data import ShardDataset, build_loader, collate, expand_urls
from speech2face.data.dataset import ShardError
from speech2face.data.shards import encode_wav, json_bytes, npy_bytes, write_tar
from tests.data.conftest import DAMAGED_MEMBERS, damaged_copy, names_a_damaged_sample

RANKS = 2
WORKERS = 2


def fake_shards(root: Path, sizes: list[int], seconds: float = 7.0, audio=True) -> set[str]:
    """Write shards of synthetic samples (sample i's waveform is a ramp starting at i);
    ``audio``: whether samples have a waveform, or a function of the sample's number."""
    (root / "shards").mkdir(parents=True)
    rng = np.random.default_rng(0)
    jpeg = io.BytesIO()
    Image.fromarray(np.zeros((224, 224, 3), np.uint8)).save(jpeg, format="JPEG")
    keys, index, n = set(), {"train": [], "val": [], "test": []}, 0
    for s, size in enumerate(sizes):
        samples = []
        for _ in range(size):
            key = f"sample{n:05d}"
            members = {
                "json": json_bytes({"key": key, "speaker": f"spk{n % 5}", "split": "train"}),
                "jpg": jpeg.getvalue(),
                "lm68.npy": npy_bytes(rng.uniform(0, 224, (68, 2)).astype(np.float32)),
                "feat.npy": npy_bytes(rng.normal(size=16).astype(np.float16)),
            }
            if audio(n) if callable(audio) else audio:
                ramp = (np.arange(int(seconds * SAMPLE_RATE)) + n) % 30_000
                members["wav"] = encode_wav(ramp.astype(np.int16))
            samples.append((key, members))
            keys.add(key)
            n += 1
        path = f"shards/train-{s:06d}.tar"
        write_tar(root / path, samples)
        index["train"].append({"path": path, "samples": size})
    (root / "shards.json").write_text(json.dumps(index))
    return keys


def epoch_keys(root: Path, epochs: int = 2, per_rank: bool = False, **kwargs) -> list:
    """Keys each epoch yields, over RANKS ranks x WORKERS loader workers (``per_rank``: a
    Counter per rank and epoch, else one per epoch)."""
    counts = [[Counter() for _ in range(RANKS)] for _ in range(epochs)]
    for rank in range(RANKS):
        ds = ShardDataset(str(root), "train", rank=rank, world_size=RANKS, **kwargs)
        loader = build_loader(ds, batch_size=3, num_workers=WORKERS, drop_last=False)
        for epoch in range(epochs):
            for batch in loader:
                counts[epoch][rank].update(batch["key"])
    return counts if per_rank else [sum(ranks, Counter()) for ranks in counts]


@pytest.mark.parametrize("sizes", [[3, 5, 1, 4, 2, 6, 3], [4, 2]], ids=["many", "few"])
def test_every_sample_once_per_epoch(tmp_path, sizes):
    """Training, 2 ranks x 2 workers, a sample count that divides by the ranks: every
    sample exactly once per epoch, with more shards than consumers and with fewer."""
    keys = fake_shards(tmp_path, sizes)
    for counts in epoch_keys(tmp_path):
        assert set(counts) == keys
        assert set(counts.values()) == {1}


def test_ranks_get_equal_counts(tmp_path):
    """3 shards on 2 ranks (7 samples): each rank yields floor(7 / 2) = 3 distinct samples
    per epoch, so no rank waits for another at the end of an epoch under DDP; the same
    holds when a rank must skip face-only samples."""
    keys = fake_shards(tmp_path / "a", [3, 2, 2])
    for ranks in epoch_keys(tmp_path / "a", per_rank=True):
        assert [sum(c.values()) for c in ranks] == [3, 3]
        both = sum(ranks, Counter())
        assert set(both) <= keys and set(both.values()) == {1}
    ds = ShardDataset(str(tmp_path / "a"), "train", rank=1, world_size=2)
    assert ds.samples_per_rank() == 3 and ds.samples_per_rank(3) == 2
    fake_shards(tmp_path / "b", [4, 1, 2], audio=lambda n: n % 3 != 0)  # 3 of 7 face-only
    for ranks in epoch_keys(tmp_path / "b", per_rank=True):
        assert [sum(c.values()) for c in ranks] == [3, 3]
    # Evaluation keeps exact coverage: every sample once, in shard order.
    seen = []
    for rank in range(2):
        ds = ShardDataset(str(tmp_path / "a"), "train", train=False, rank=rank, world_size=2)
        seen += [sample["key"] for sample in ds]
    assert sorted(seen) == sorted(keys)


def test_epochs_reshuffle_the_shard_order(tmp_path):
    fake_shards(tmp_path, [2] * 8)
    ds = ShardDataset(str(tmp_path), "train", shuffle_buffer=0)
    orders = [[s[0] for s in ds.assignment(epoch, 0, 1, 0, 1)] for epoch in range(4)]
    assert len({tuple(o) for o in orders}) > 1
    assert all(sorted(o) == sorted(orders[0]) for o in orders)
    # Evaluation reads in order, the same every epoch.
    ds = ShardDataset(str(tmp_path), "train", train=False)
    assert [s[0] for s in ds.assignment(3, 0, 1, 0, 1)] == ds.shards


SIZES = [3, 5, 1, 4, 2, 6, 3]  # 24 samples in 7 shards
# (num_workers, persistent_workers): in this process, and workers kept or started each epoch.
LOADERS = [(0, False), (1, False), (1, True), (2, False), (2, True)]
LOADER_IDS = ["in-process", "1-fresh", "1-persistent", "2-fresh", "2-persistent"]


def shuffled_loader(root: Path, workers: int, persistent: bool) -> tuple[ShardDataset, DataLoader]:
    """A training dataset (shuffle buffer, random windows) and a loader of batches of 3."""
    ds = ShardDataset(str(root), "train", shuffle_buffer=4, seed=5)
    loader = DataLoader(
        ds, batch_size=3, num_workers=workers, collate_fn=collate, persistent_workers=persistent
    )
    return ds, loader


def pass_keys(loader: DataLoader) -> list[str]:
    """The keys one pass over ``loader`` yields, in order."""
    return [key for batch in loader for key in batch["key"]]


class FirstPasses:
    """The reference for epoch ``e``: the first pass of a new dataset and loader after
    ``set_epoch(e)`` (the dataset's first pass does not depend on counting passes)."""

    def __init__(self, root: Path, workers: int, persistent: bool) -> None:
        self.args = (root, workers, persistent)
        self.cache: dict[int, list[str]] = {}

    def __call__(self, epoch: int) -> list[str]:
        if epoch not in self.cache:
            ds, loader = shuffled_loader(*self.args)
            ds.set_epoch(epoch)
            self.cache[epoch] = pass_keys(loader)
        return self.cache[epoch]


def test_an_epoch_reads_the_shards_in_that_epochs_order(tmp_path):
    """set_epoch(e) before each pass in this process: pass e reads the shards in epoch e's
    order (not epoch 2e, counting the pass twice)."""
    fake_shards(tmp_path, SIZES)
    ds = ShardDataset(str(tmp_path), "train", shuffle_buffer=0)
    first = np.cumsum([0, *SIZES])
    keys_of = {
        shard: [f"sample{n:05d}" for n in range(first[i], first[i + 1])]
        for i, shard in enumerate(ds.shards)
    }
    passes = []
    for epoch in range(4):
        ds.set_epoch(epoch)
        assert ds.epoch == epoch
        expected = [k for shard, _, _ in ds.assignment(epoch, 0, 1, 0, 1) for k in keys_of[shard]]
        passes.append([sample["key"] for sample in ds])
        assert passes[-1] == expected, epoch
    assert len({tuple(p) for p in passes}) == 4


@pytest.mark.parametrize("workers, persistent", LOADERS, ids=LOADER_IDS)
def test_set_epoch_reads_that_epoch_with_any_workers(tmp_path, workers, persistent):
    """set_epoch(e) before each pass gives epoch e's samples in epoch e's order, also when
    epochs repeat or go back, whether passes run here or in (persistent) loader workers."""
    keys = fake_shards(tmp_path, SIZES)
    first_pass = FirstPasses(tmp_path, workers, persistent)
    ds, loader = shuffled_loader(tmp_path, workers, persistent)
    for epoch in (0, 1, 2, 5, 5, 1):
        ds.set_epoch(epoch)
        assert pass_keys(loader) == first_pass(epoch), epoch
    assert all(sorted(first_pass(e)) == sorted(keys) for e in (0, 1, 2, 5))
    assert len({tuple(first_pass(e)) for e in (0, 1, 2, 5)}) == 4  # epochs differ
    if workers == 1:  # one worker reads what this process would
        alone = ShardDataset(str(tmp_path), "train", shuffle_buffer=4, seed=5)
        alone.set_epoch(5)
        assert [sample["key"] for sample in alone] == first_pass(5)


@pytest.mark.parametrize("workers, persistent", LOADERS, ids=LOADER_IDS)
def test_passes_advance_the_epoch_without_set_epoch(tmp_path, workers, persistent):
    """Without set_epoch, passes read epochs 0, 1, 2, ...; a pass in this process between
    loader passes counts too, and ``epoch`` names the epoch the next pass reads."""
    fake_shards(tmp_path, SIZES)
    first_pass = FirstPasses(tmp_path, workers, persistent)
    ds, loader = shuffled_loader(tmp_path, workers, persistent)
    assert ds.epoch == 0
    for epoch in range(3):
        assert pass_keys(loader) == first_pass(epoch), epoch
        assert ds.epoch == epoch + 1
    here = ShardDataset(str(tmp_path), "train", shuffle_buffer=4, seed=5)
    here.set_epoch(3)
    assert [sample["key"] for sample in ds] == [sample["key"] for sample in here]
    assert pass_keys(loader) == first_pass(4)
    assert ds.epoch == 5


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("original_sets_epochs", [True, False], ids=["set_epoch", "counted"])
def test_a_resumed_run_reads_what_the_original_read(tmp_path, workers, original_sets_epochs):
    """A new dataset resumed at epoch 2 with set_epoch(2) yields, in epochs 2 and 3, the
    samples, order and random windows the original run yielded in its epochs 2 and 3."""
    fake_shards(tmp_path, SIZES, seconds=7.5)

    def run(epochs, set_epochs: bool, start: int | None = None) -> list[list]:
        ds = ShardDataset(str(tmp_path), "train", seed=11)
        if start is not None:
            ds.set_epoch(start)
        loader = build_loader(ds, batch_size=4, num_workers=workers, drop_last=False)
        out = []
        for epoch in epochs:
            if set_epochs:
                ds.set_epoch(epoch)
            out.append(
                [
                    (k, w)
                    for batch in loader
                    for k, w in zip(batch["key"], batch["wav"], strict=True)
                ]
            )
        return out

    original = run(range(4), original_sets_epochs)
    for resumed in (run([2, 3], True), run([2, 3], False, start=2)):
        for got, expected in zip(resumed, original[2:], strict=True):
            assert [k for k, _ in got] == [k for k, _ in expected]
            assert all(torch.equal(a, b) for (_, a), (_, b) in zip(got, expected, strict=True))
    assert [k for k, _ in original[2]] != [k for k, _ in original[3]]


def test_preprocessed_output_reads_once_per_epoch(preprocessed):
    manifest = [json.loads(line) for line in (preprocessed / "manifest.jsonl").open()]
    for split in ("train", "val", "test"):
        keys = {m["key"] for m in manifest if m["split"] == split}
        if not keys:
            continue
        counts: Counter = Counter()
        for rank in range(RANKS):
            ds = ShardDataset(str(preprocessed), split, rank=rank, world_size=RANKS, train=False)
            for batch in build_loader(ds, batch_size=2, num_workers=WORKERS):
                counts.update(batch["key"])
        assert set(counts) == keys and set(counts.values()) == {1}


def test_train_windows_and_evaluation_clips(tmp_path):
    fake_shards(tmp_path / "long", [2], seconds=8.0)
    fake_shards(tmp_path / "short", [1], seconds=2.5)
    for sample in ShardDataset(str(tmp_path / "long"), "train", train=False):
        n = int(sample["key"][-5:])
        full = torch.from_numpy(((np.arange(8 * SAMPLE_RATE) + n) % 30_000).astype(np.float32))
        assert sample["wav"].shape == (N_SAMPLES,)
        torch.testing.assert_close(sample["wav"], full[:N_SAMPLES] / 32768)  # the first 6 s
    starts = set()
    for _ in range(5):
        for sample in ShardDataset(str(tmp_path / "long"), "train", seed=len(starts)):
            wav = (sample["wav"] * 32768).round()
            assert wav.shape == (N_SAMPLES,)
            steps = torch.diff(wav)
            assert ((steps == 1) | (steps == -29_999)).all()  # a contiguous window
            starts.add(int(wav[0]))
    assert len(starts) > 1  # random windows
    (short,) = list(ShardDataset(str(tmp_path / "short"), "train"))
    pcm = torch.from_numpy(((np.arange(int(2.5 * SAMPLE_RATE))) % 30_000).astype(np.float32))
    torch.testing.assert_close(short["wav"], fit_to_length(pcm / 32768))  # the paper's tiling


def test_collate_batches_every_field(preprocessed):
    ds = ShardDataset(str(preprocessed), "train", with_image=True, with_landmarks=True)
    samples = list(ds)[:3]
    batch = collate(samples)
    b = len(samples)
    assert batch["wav"].shape == (b, N_SAMPLES) and batch["wav"].dtype == torch.float32
    assert batch["feature"].shape == (b, 128) and batch["feature"].dtype == torch.float32
    assert batch["image"].shape == (b, 3, 224, 224) and batch["image"].dtype == torch.uint8
    assert batch["landmarks"].shape == (b, 68, 2)
    assert batch["has_audio"].all()
    assert len(batch["key"]) == len(batch["meta"]) == b
    assert all(m["face_encoder"] == "dlib" for m in batch["meta"])


def test_face_only_samples(tmp_path):
    keys = fake_shards(tmp_path, [3], audio=False)
    assert list(ShardDataset(str(tmp_path), "train")) == []
    samples = list(ShardDataset(str(tmp_path), "train", require_audio=False, with_image=True))
    assert {s["key"] for s in samples} == keys
    assert all(not s["has_audio"] and s["wav"].abs().sum() == 0 for s in samples)


@pytest.mark.parametrize("workers", [0, 1])
@pytest.mark.parametrize("name", DAMAGED_MEMBERS)
def test_damaged_samples_name_their_shard_and_key(preprocessed, tmp_path, name, workers):
    """In this process or in a loader worker (whose traceback torch folds into the message),
    the error is the one line naming the shard and the sample."""
    ext, payload, says = DAMAGED_MEMBERS[name]
    first = damaged_copy(preprocessed, tmp_path / "data", ext, payload)
    dataset = ShardDataset(str(tmp_path / "data"), "val", train=False, with_image=True)
    with pytest.raises(ShardError) as caught:
        list(build_loader(dataset, batch_size=1, num_workers=workers))
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message, message
    assert names_a_damaged_sample(message, first) and says in message, message


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_streams_shards_over_http(preprocessed, no_proxy):
    handler = functools.partial(_Quiet, directory=str(preprocessed))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        remote = ShardDataset(url, "train", train=False)
        assert remote.shards[0].startswith("http://")
        local = ShardDataset(str(preprocessed), "train", train=False)
        assert remote.num_samples == local.num_samples
        assert [s["key"] for s in remote] == [s["key"] for s in local]
        listed = ShardDataset(urls=remote.shards, train=False)
        assert len(list(listed)) == local.num_samples
    finally:
        server.shutdown()
        server.server_close()


def test_webdataset_reads_the_shards(preprocessed):
    wds = pytest.importorskip("webdataset")
    urls = sorted(str(p) for p in (preprocessed / "shards").glob("*.tar"))
    samples = list(wds.WebDataset(urls, shardshuffle=False).decode("rgb8"))
    manifest = [json.loads(line) for line in (preprocessed / "manifest.jsonl").open()]
    assert sorted(s["__key__"] for s in samples) == sorted(m["key"] for m in manifest)
    first = samples[0]
    assert first["jpg"].shape == (224, 224, 3)
    assert first["feat.npy"].dtype == np.float16 and first["lm68.npy"].shape == (68, 2)
    assert first["json"]["key"] == first["__key__"]


def test_url_ranges_and_ranks_from_torch_distributed(tmp_path):
    assert expand_urls("s/train-{000008..000010}.tar") == [
        "s/train-000008.tar",
        "s/train-000009.tar",
        "s/train-000010.tar",
    ]
    fake_shards(tmp_path, [1, 1])
    ds = ShardDataset(urls=str(tmp_path / "shards/train-{000000..000001}.tar"))
    assert ds.num_samples is None and len(list(ds)) == 2
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        assert ds._ranks() == (0, 1)
    finally:
        torch.distributed.destroy_process_group()


def test_data_config_instantiates(preprocessed):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(config_dir() / "data" / "shards.yaml")
    cfg.root = str(preprocessed)
    ds = instantiate(cfg)
    assert isinstance(ds, ShardDataset) and ds.train and ds.clip_samples == N_SAMPLES
    # As data/README.md shows it: composed with overrides.
    from speech2face.config import compose

    cfg = compose(
        "data/shards", [f"data.root={preprocessed}", "data.split=val", "data.train=false"]
    )
    ds = instantiate(cfg.data)
    assert isinstance(ds, ShardDataset) and not ds.train and "/val-" in ds.shards[0]

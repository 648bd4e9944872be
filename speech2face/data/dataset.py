"""The training dataset: stream preprocessed shards, yield (waveform, face feature, ...).

Shards are read sequentially as tar streams from a local directory or from URLs
(``http://``, ``https://``, ``file://``), so a data set on a web server or object store
trains without a local copy. Every (DDP rank, loader worker) pair is one *consumer*.

Training (``train=True``, shard sample counts known from ``shards.json``): each epoch the
shard list is shuffled with the epoch's seed (identically on every rank) and its samples,
in that order, form one sequence; rank ``r`` of ``W`` reads the ``r``-th run of
``floor(total / W)`` samples of it, split among its loader workers the same way on every
rank. Every rank therefore yields the same number of samples (and, with ``drop_last``,
batches) per epoch, as DDP needs: a rank with more data would wait forever at the end of an
epoch for the others. When ``total`` divides by ``W`` every sample is read exactly once per
epoch; otherwise the last ``total mod W`` samples of the epoch's order are left out (other
ones each epoch). Samples a consumer skips (face-only ones with ``require_audio``) are
made up by reading on past its run, wrapping around, so the count holds (a split with no
usable sample at all yields nothing on every rank). A consumer reads its run in blocks of
``shuffle_buffer`` positions and yields each block in a random order fixed by the seed, the
epoch, the consumer and the block; every training sample carries its ``cursor`` (consumer,
samples yielded, block, entry of the block's order), so a run can record where each
consumer stands and resume there (:meth:`ShardDataset.set_resume`) through the shard index,
passing over the samples before the block without reading their data.

Evaluation (``train=False``), and training from ``urls`` without sample counts: the shard
list (in order) is dealt out to the consumers, so every sample is read exactly once; with
fewer shards than consumers, consumers sharing a shard take every k-th sample of it. Ranks
then get unequal numbers of samples: gather evaluation results without collective calls
per batch, or evaluate on one rank.

Epochs: a pass reads the epoch last given to :meth:`ShardDataset.set_epoch` (0 before any)
plus the number of passes begun since, so calling ``set_epoch(e)`` before each epoch reads
epoch ``e`` (and a run resumed with ``set_epoch(e)`` reads what the original run read in epoch
``e``), and without it successive passes read epochs 0, 1, 2, ... The count lives in shared
memory, so it is the same whether the passes run in this process (``num_workers=0``) or in
loader workers, persistent or started afresh each epoch.

Waveforms: training takes a random 6 s window of the stored segment (``window="random"``,
drawn from the seed, the epoch and the sample's position) or its first 6 s
(``window="first"``, the paper's); segments shorter than 6 s are tiled
(:func:`speech2face.audio.fit_to_length`); evaluation takes the first 6 s. Spectrograms are computed on the device in the training step
(:func:`speech2face.audio.spectrogram`), not here.
"""

from __future__ import annotations

import io
import json
import random
import re
import tarfile
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from speech2face.audio import N_SAMPLES, SAMPLE_RATE, fit_to_length
from speech2face.data.shards import decode_wav, iter_tar_samples, read_npy
from speech2face.errors import S2FError

__all__ = [
    "ShardDataset",
    "ShardError",
    "build_loader",
    "collate",
    "expand_urls",
    "shard_urls",
]

URL_TIMEOUT_SECONDS = 60
WINDOWS = ("random", "first")  # where a training clip is cut from a longer segment
MAX_LOADER_WORKERS = 256  # loader workers per rank that keep a pass count (see __iter__)
PCM_SCALE = 32768.0  # int16 -> float in [-1, 1)
_RANGE = re.compile(r"\{(\d+)\.\.(\d+)\}")
_IN_MEMORY = re.compile(r"<_io\.BytesIO object at 0x[0-9a-fA-F]+>")  # how PIL names a buffer


class ShardError(S2FError, ValueError):
    """A shard, or a sample in it, that cannot be read; the message names both.

    Raised in a loader worker, it reaches the training process re-made by torch from its
    worker's whole traceback; the message is then cut back to the original line.
    """

    def __init__(self, message: str) -> None:
        if message.startswith("Caught ") and "Original Traceback" in message:
            last = message.strip().splitlines()[-1]
            message = last.split(f"{type(self).__name__}: ", 1)[-1]
        super().__init__(message)


# The members a sample's decoding reads, and how a message names each.
_MEMBER_NAMES = {"json": ".json", "wav": ".wav", "feat.npy": ".feat.npy", "jpg": ".jpg",
                 "lm68.npy": ".lm68.npy"}  # fmt: skip


def _is_url(text: str) -> bool:
    return text.startswith(("http://", "https://", "file://"))


def expand_urls(pattern: str) -> list[str]:
    """Expand numeric ranges: ``"a/train-{000000..000002}.tar"`` -> three names (width kept)."""
    match = _RANGE.search(pattern)
    if match is None:
        return [pattern]
    first, last = match.group(1), match.group(2)
    width = len(first)
    out = []
    for number in range(int(first), int(last) + 1):
        out += expand_urls(
            pattern[: match.start()] + f"{number:0{width}d}" + pattern[match.end() :]
        )
    return out


def _read_text(location: str) -> str | None:
    """A small text file from a path or URL; ``None`` when it does not exist."""
    if _is_url(location):
        try:
            with urllib.request.urlopen(location, timeout=URL_TIMEOUT_SECONDS) as response:
                return response.read().decode("utf-8")
        except OSError:
            return None
    path = Path(location)
    return path.read_text() if path.is_file() else None


def shard_urls(root: str, split: str) -> list[tuple[str, int | None]]:
    """``(url or path, sample count or None)`` of a split's shards under ``root``.

    ``root`` is an output directory of ``s2f-preprocess`` (local or a URL): its
    ``shards.json`` lists the shards; a local directory without it (a run still going) is
    globbed for ``shards/<split>-*.tar``.
    """
    root = str(root).rstrip("/")
    index = _read_text(f"{root}/shards.json")
    if index is not None:
        try:
            entries = json.loads(index).get(split, [])
        except (json.JSONDecodeError, AttributeError):
            raise S2FError(f"{root}/shards.json is not a valid shard index") from None
        return [(f"{root}/{entry['path']}", int(entry["samples"])) for entry in entries]
    if _is_url(root):
        raise S2FError(f"{root}/shards.json not found: is this an s2f-preprocess output?")
    shards = sorted((Path(root) / "shards").glob(f"{split}-*.tar"))
    return [(str(path), None) for path in shards]


def available_splits(root: str) -> list[str]:
    """The splits of ``root`` that hold shards, in ``shards.json``'s order (or, for a local
    folder without one, by name); ``[]`` where that cannot be told."""
    root = str(root).rstrip("/")
    try:
        index = _read_text(f"{root}/shards.json")
        if index is not None:
            table = json.loads(index)
            return (
                [name for name, entries in table.items() if entries]
                if isinstance(table, dict)
                else []
            )
    except (S2FError, OSError, json.JSONDecodeError):
        return []
    if _is_url(root):
        return []
    names = {path.name.rsplit("-", 1)[0] for path in (Path(root) / "shards").glob("*-*.tar")}
    return sorted(names)


def _open(location: str) -> IO[bytes]:
    if _is_url(location):
        return urllib.request.urlopen(location, timeout=URL_TIMEOUT_SECONDS)
    return open(location, "rb")


def resolve_ranks(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """``(rank, world size)``: as given, else from ``torch.distributed`` when it is
    initialised, else 0 of 1."""
    if rank is not None or world_size is not None:
        rank, world = int(rank or 0), int(world_size or 1)
    elif torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    else:
        rank, world = 0, 1
    if not 0 <= rank < world:
        raise S2FError(f"rank {rank} is outside world size {world}")
    return rank, world


class ShardDataset(IterableDataset):
    """Samples of one split, streamed from shards.

    Args:
        root: an ``s2f-preprocess`` output directory or its URL (uses ``shards.json``).
        split: ``train``, ``val`` or ``test`` (with ``root``).
        urls: explicit shard paths/URLs instead of ``root`` (a list, or one string with
            ``{000000..000009}`` ranges).
        train: random 6 s windows and shuffling (``True``) or the first 6 s in order.
        clip_samples: waveform length (96,000 = 6 s at 16 kHz, the paper's); ``None``: the
            stored segment whole, as long as it is (evaluation's windows; not collatable).
        with_image: also yield the aligned crop, ``(3, 224, 224)`` uint8.
        with_landmarks: also yield the 68 landmarks, ``(68, 2)`` float32 crop pixels.
        require_audio: skip face-only samples (no ``.wav``); ``False`` yields them with an
            all-zero waveform and ``has_audio`` False (for training the face decoder).
        shuffle_buffer: samples per shuffled block when training (0 or 1: in order); each
            consumer reads its run in blocks of this many samples and yields each block in
            a random order.
        window: ``random`` (a random 6 s of a longer segment when training) or ``first``
            (the first 6 s, the paper's; evaluation always takes the first).
        seed: base of the per-epoch shard order and of the per-consumer random windows.
        rank, world_size: the DDP process; default: ``torch.distributed`` when it is
            initialised, else 0 of 1.

    How samples are divided among ranks and loader workers: see the module docstring
    (training: the same count on every rank; evaluation: every sample exactly once).
    How passes are numbered into epochs (:meth:`set_epoch`, or counted): see there too.

    Each item is a dict: ``wav`` ``(clip_samples,)`` float32, ``feature`` ``(D,)`` float32,
    ``has_audio`` bool, ``key``, ``speaker`` and ``meta`` (the sample's JSON), plus
    ``image`` / ``landmarks`` when asked for.
    """

    def __init__(
        self,
        root: str | None = None,
        split: str = "train",
        urls: Sequence[str] | str | None = None,
        train: bool = True,
        clip_samples: int | None = N_SAMPLES,
        with_image: bool = False,
        with_landmarks: bool = False,
        require_audio: bool = True,
        shuffle_buffer: int = 1024,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        window: str = "random",
    ) -> None:
        super().__init__()
        if (root is None) == (urls is None):
            raise S2FError("give ShardDataset either root (with split) or urls")
        if root is not None:
            entries = shard_urls(str(root), split)
        else:
            listed = (
                expand_urls(urls)
                if isinstance(urls, str)
                else [u for x in urls for u in expand_urls(x)]
            )
            entries = [(u, None) for u in listed]
        if not entries:
            where = root if root else urls
            there = available_splits(str(root)) if root is not None else []
            held = f" (it holds: {', '.join(there)})" if there else ""
            raise S2FError(f"no shards found for split '{split}' in {where}{held}")
        self.shards = [u for u, _ in entries]
        counts = [n for _, n in entries]
        known = None if any(n is None for n in counts) else [int(n or 0) for n in counts]
        self.counts: list[int] | None = known  # samples per shard, from shards.json
        self.num_samples = None if self.counts is None else sum(self.counts)
        self.train = train
        self.clip_samples = None if clip_samples is None else int(clip_samples)
        self.with_image = with_image
        self.with_landmarks = with_landmarks
        self.require_audio = require_audio
        self.shuffle_buffer = int(shuffle_buffer) if train else 0
        if window not in WINDOWS:
            raise S2FError(f"data.window must be one of {', '.join(WINDOWS)}, got {window!r}")
        self.window = window
        self.seed = int(seed)
        self._resume: dict[str, Any] | None = None  # see set_resume
        self._rank = rank
        self._world_size = world_size
        # Shared with loader workers (forked or pickled for spawn), so that set_epoch reaches
        # persistent workers and passes in fresh workers are counted: [0] the epoch last set,
        # [1 + w] the passes loader worker w (or this process, as worker 0) has begun since.
        # One slot per worker, so no two processes write the same slot. (1 + workers,) int64.
        self._passes = torch.zeros(1 + MAX_LOADER_WORKERS, dtype=torch.int64).share_memory_()

    @property
    def epoch(self) -> int:
        """The epoch the next pass reads."""
        return int(self._passes[0] + self._passes[1])

    def set_epoch(self, epoch: int) -> None:
        """Read ``epoch`` in the next pass, ``epoch + 1`` in the one after, and so on (call
        before each epoch, like DistributedSampler; a resumed run calls it with its epoch)."""
        self._passes[0] = int(epoch)
        self._passes[1:] = 0

    def _begin_pass(self, worker: int, workers: int) -> int:
        """Count a pass of consumer ``worker`` of ``workers``; return the epoch it reads."""
        if workers > MAX_LOADER_WORKERS:
            raise S2FError(f"ShardDataset takes at most {MAX_LOADER_WORKERS} loader workers")
        begun = int(self._passes[1 + worker])
        self._passes[1 + worker] = begun + 1
        if worker == 0:  # keep the slots of workers this loader lacks in step
            self._passes[1 + workers :] = begun + 1
        return int(self._passes[0]) + begun

    def _ranks(self) -> tuple[int, int]:
        return resolve_ranks(self._rank, self._world_size)

    def _order(self, epoch: int) -> list[int]:
        """Indices of the shards in ``epoch``'s order (shuffled when training)."""
        order = list(range(len(self.shards)))
        if self.train:
            random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
        return order

    def samples_per_rank(self, world_size: int | None = None) -> int | None:
        """Samples each rank yields per epoch when training: ``floor(total / world)``;
        ``None`` when not training or the shard sample counts are unknown."""
        if not self.train or self.num_samples is None:
            return None
        world = self._ranks()[1] if world_size is None else int(world_size)
        return self.num_samples // world

    def quota(
        self, rank: int, world: int, worker: int, workers: int, total: int | None = None
    ) -> tuple[int, int]:
        """``(first, count)``: where one training consumer's run starts in the epoch's
        sequence of ``total`` positions (default: all samples), and how many samples it
        yields (the same on every rank)."""
        assert self.num_samples is not None
        per_rank = (self.num_samples if total is None else total) // world
        base, extra = divmod(per_rank, workers)
        count = base + (1 if worker < extra else 0)
        return rank * per_rank + worker * base + min(worker, extra), count

    def assignment(self, epoch: int, rank: int, world: int, worker: int, workers: int):
        """``[(shard, stride, offset)]`` read by one consumer in ``epoch`` when shards are
        dealt out (evaluation; training without counts): it keeps the samples whose index
        in the shard is ``offset`` modulo ``stride``."""
        order = [self.shards[i] for i in self._order(epoch)]
        consumers = world * workers
        me = rank * workers + worker
        if len(order) >= consumers:
            return [(shard, 1, 0) for shard in order[me::consumers]]
        sharing = len(range(me % len(order), consumers, len(order)))  # consumers on my shard
        return [(order[me % len(order)], sharing, me // len(order))]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        # Not a generator: the pass is counted when it begins (a DataLoader worker calls
        # iter() once per pass), even if no sample of it is ever asked for.
        rank, world = self._ranks()
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        epoch = self._begin_pass(worker, workers)
        resume = self._resume
        if resume is not None and resume["epoch"] == epoch and self.train:
            worker = (worker + resume["rotate"]) % workers  # the role it plays (set_resume)
        return self._stream(epoch, rank, world, worker, workers)

    def _stream(
        self, epoch: int, rank: int, world: int, worker: int, workers: int
    ) -> Iterator[dict[str, Any]]:
        """The samples one consumer reads in ``epoch``."""
        rng = np.random.default_rng([self.seed, epoch, rank, worker])
        if self.train and self.counts is not None:
            yield from self._blocks(epoch, rank, world, worker, workers)
            return
        stream = self._samples(self.assignment(epoch, rank, world, worker, workers), rng)
        if self.shuffle_buffer > 1:
            stream = _shuffled(stream, self.shuffle_buffer, rng)
        yield from stream

    def _samples(self, plan, rng: np.random.Generator) -> Iterator[dict[str, Any]]:
        for shard, stride, offset in plan:
            for index, (key, members) in self._read(shard):
                if index % stride != offset:
                    continue
                sample = self._decode(shard, key, members, rng)
                if sample is not None:
                    yield sample

    def _read(self, shard: str, skip: int = 0) -> Iterator[tuple[int, tuple[str, dict]]]:
        """``(index, (key, members))`` of a shard's samples from index ``skip`` on; the
        samples before it are passed over without reading their data (a local file: only
        their headers are read)."""
        local = not _is_url(shard)
        try:
            with _open(shard) as f:
                records = iter_tar_samples(f, skip=skip, seekable=local)
                yield from enumerate(records, start=skip)
        except (OSError, tarfile.TarError) as error:  # unreadable, or cut short
            raise ShardError(f"cannot read shard {shard}: {error}") from None

    def draw(self, count: int, seed: int = 0) -> Iterator[dict[str, Any]]:
        """Up to ``count`` samples drawn at random over all shards (without replacement;
        every sample when there are fewer), read in shard order, each shard opened once and
        the samples between those drawn skipped without reading their data (a local shard).
        Samples this dataset skips (face-only with ``require_audio``) are left out. Without
        sample counts: the first ``count`` samples of a pass."""
        if self.counts is None:
            for index, sample in enumerate(self):
                if index >= count:
                    return
                yield sample
            return
        assert self.num_samples is not None
        rng = np.random.default_rng(seed)
        chosen = np.sort(rng.choice(self.num_samples, min(count, self.num_samples), replace=False))
        starts, order = self._locate(list(range(len(self.shards))))
        reader = _Reader(self)
        for position in chosen:
            shard, key, members = reader.get(*self._where(int(position), starts, order))
            sample = self._decode(shard, key, members, rng)
            if sample is not None:
                yield sample

    # ------------------------------------------------------------ training positions

    def set_resume(
        self,
        epoch: int,
        consumed: np.ndarray | None,
        cursors: np.ndarray | None = None,
        rotate: int = 0,
    ) -> None:
        """Start ``epoch`` part way through (once: later epochs start from their beginning).

        ``consumed``: ``(total,)`` bool, the epoch's positions (see :meth:`positions`) read
        before the run that is being resumed began (``None``: none); the epoch's remaining
        positions are then divided among the consumers. ``cursors``: ``(world * workers, 3)``
        int, where each consumer of that run stood (:meth:`consumed_positions`); given only
        when this run has the same world size and loader workers, so each consumer carries on
        exactly where it stopped (reading at most one block again, and skipping the samples
        before it through the shard index, without reading their data). ``rotate``: the
        batches the loader had yielded in the epoch: a DataLoader takes batches from its
        workers in turn, starting with worker 0, so loader worker ``w`` carries on the run of
        worker ``(w + rotate) mod workers`` and the batches come in the original order.
        """
        self._resume = {
            "epoch": int(epoch),
            "consumed": None if consumed is None else np.asarray(consumed, dtype=bool),
            "cursors": None if cursors is None else np.asarray(cursors, dtype=np.int64),
            "rotate": int(rotate) if cursors is not None else 0,
        }

    def _remaining(self, epoch: int) -> np.ndarray | None:
        """The positions of ``epoch`` still to read, ``None``: all of them."""
        resume = self._resume
        if resume is None or resume["epoch"] != epoch or resume["consumed"] is None:
            return None
        return np.flatnonzero(~resume["consumed"])

    def _cursor(self, epoch: int, consumer: int) -> tuple[int, int, int]:
        resume = self._resume
        if resume is None or resume["epoch"] != epoch or resume["cursors"] is None:
            return 0, 0, 0
        yielded, block, taken = (int(x) for x in resume["cursors"][consumer])
        return yielded, block, taken

    def _block_size(self) -> int:
        return max(self.shuffle_buffer, 1)

    def _block_reads(self, block: int, count: int) -> np.ndarray:
        """The read indices of a consumer's ``block``: its run of ``count`` positions is
        cut into blocks of ``shuffle_buffer`` (the last one shorter), and reading on past it
        (to make up skipped samples) goes on in whole blocks."""
        size = self._block_size()
        inside = -(-count // size)  # blocks within the run
        if block < inside:
            return np.arange(block * size, min((block + 1) * size, count))
        start = count + (block - inside) * size
        return np.arange(start, start + size)

    def _permutation(self, epoch: int, rank: int, worker: int, block: int, n: int) -> np.ndarray:
        if n <= 1:
            return np.zeros(n, dtype=np.int64)
        return np.random.default_rng([self.seed, epoch, rank, worker, block]).permutation(n)

    def consumed_positions(
        self, epoch: int, world: int, workers: int, cursors: np.ndarray
    ) -> np.ndarray:
        """``(total,)`` bool: the positions of ``epoch`` read by a run of ``world`` ranks
        with ``workers`` loader workers each whose consumers stand at ``cursors``
        (``(world * workers, 3)``: samples yielded, block, entries of that block's order
        passed), together with those read before that run began (:meth:`set_resume`)."""
        assert self.num_samples is not None
        done = np.zeros(self.num_samples, dtype=bool)
        remaining = self._remaining(epoch)
        if remaining is None:
            remaining = np.arange(self.num_samples)
        else:
            done[:] = True
            done[remaining] = False
        n = len(remaining)
        if n == 0:
            return done
        for rank in range(world):
            for worker in range(workers):
                _, block, taken = (int(x) for x in cursors[rank * workers + worker])
                first, count = self.quota(rank, world, worker, workers, n)
                reads = [self._block_reads(b, count) for b in range(block)]
                if taken:
                    last = self._block_reads(block, count)
                    order = self._permutation(epoch, rank, worker, block, len(last))
                    reads.append(last[order[:taken]])
                if reads:
                    done[remaining[(first + np.concatenate(reads)) % n]] = True
        return done

    def _locate(self, order: list[int]) -> tuple[np.ndarray, list[int]]:
        """Where each shard of ``order`` starts in the epoch's positions."""
        assert self.counts is not None
        sizes = [self.counts[i] for i in order]
        return np.cumsum([0, *sizes]), order

    def _blocks(
        self, epoch: int, rank: int, world: int, worker: int, workers: int
    ) -> Iterator[dict[str, Any]]:
        """One training consumer's samples: its run of the epoch's remaining positions,
        read in blocks of ``shuffle_buffer`` positions, each yielded in a random order;
        samples it skips (face-only ones with ``require_audio``) are made up by reading on
        past its run, wrapping around, so every rank yields the same count."""
        assert self.num_samples is not None
        remaining = self._remaining(epoch)
        n = self.num_samples if remaining is None else len(remaining)
        if n == 0:
            return
        first, count = self.quota(rank, world, worker, workers, n)
        if count <= 0:
            return
        starts, order = self._locate(self._order(epoch))
        yielded, block, taken = self._cursor(epoch, rank * workers + worker)
        reader = _Reader(self)
        fruitless = 0  # positions read since the last sample yielded
        while yielded < count:
            reads = (first + self._block_reads(block, count)) % n
            positions = reads if remaining is None else remaining[reads]
            permutation = self._permutation(epoch, rank, worker, block, len(positions))
            wanted = sorted(int(i) for i in permutation[taken:])  # in reading order
            records = {
                i: reader.get(*self._where(int(positions[i]), starts, order)) for i in wanted
            }
            for entry in range(taken, len(positions)):
                position = int(positions[permutation[entry]])
                shard, key, members = records.pop(int(permutation[entry]))
                window_rng = np.random.default_rng([self.seed, epoch, position])
                sample = self._decode(shard, key, members, window_rng)
                if sample is None:
                    fruitless += 1
                    if fruitless > n:  # none usable at all: every rank yields nothing
                        return
                    continue
                fruitless = 0
                yielded += 1
                sample["cursor"] = (worker, yielded, block, entry + 1)
                yield sample
                if yielded == count:
                    return
            block, taken = block + 1, 0

    def _where(self, position: int, starts: np.ndarray, order: list[int]) -> tuple[str, int]:
        """``(shard, index in it)`` of an epoch position."""
        slot = int(np.searchsorted(starts, position, side="right")) - 1
        return self.shards[order[slot]], position - int(starts[slot])

    def _decode(
        self, shard: str, key: str, members: dict[str, bytes], rng: np.random.Generator
    ) -> dict[str, Any] | None:
        """One sample, or ``None`` when it is skipped (face-only with ``require_audio``); a
        damaged or missing member is a one-line :class:`ShardError` naming the shard and key.

        A damaged sample is not skipped: preprocessing writes only samples it has read back,
        so one that does not decode means a damaged or foreign shard, which training should
        not quietly read around.
        """
        where = f"shard {shard}, sample {key}"
        part = "json"
        try:
            meta = json.loads(members["json"])
            if not isinstance(meta, dict):
                raise ValueError(f"a JSON {type(meta).__name__}, not an object")
            has_audio = "wav" in members
            if not has_audio and self.require_audio:
                return None
            if has_audio:
                part = "wav"
                pcm, rate = decode_wav(members["wav"])
                if rate != SAMPLE_RATE:
                    raise ValueError(f"audio at {rate} Hz, expected {SAMPLE_RATE}")
                wav = torch.from_numpy(pcm.astype(np.float32) / PCM_SCALE)
                if self.clip_samples is not None:
                    if self.train and self.window == "random" and wav.numel() > self.clip_samples:
                        start = int(rng.integers(0, wav.numel() - self.clip_samples + 1))
                        wav = wav[start : start + self.clip_samples]
                    wav = fit_to_length(wav, self.clip_samples)
            else:
                wav = torch.zeros(self.clip_samples or 0)
            part = "feat.npy"
            feature = read_npy(members["feat.npy"]).astype(np.float32)
            if feature.ndim != 1:
                raise ValueError(f"shape {feature.shape}, expected one feature vector (D,)")
            sample: dict[str, Any] = {
                "wav": wav,  # (clip_samples,)
                "feature": torch.from_numpy(feature),  # (D,)
                "has_audio": has_audio,
                "key": key,
                "speaker": meta.get("speaker", ""),
                "meta": meta,
            }
            if self.with_image:
                from PIL import Image

                part = "jpg"
                with Image.open(io.BytesIO(members["jpg"])) as image:
                    array = np.asarray(image.convert("RGB"))
                sample["image"] = torch.from_numpy(array.copy()).permute(2, 0, 1)  # (3, 224, 224)
            if self.with_landmarks:
                part = "lm68.npy"
                sample["landmarks"] = torch.from_numpy(read_npy(members["lm68.npy"]))  # (68, 2)
        except KeyError:
            raise ShardError(f"{where}: has no {_MEMBER_NAMES[part]} member") from None
        except Exception as cause:  # noqa: BLE001 (each decoder fails its own way)
            reason = " ".join(str(cause).split()) or type(cause).__name__
            reason = _IN_MEMORY.sub(f"{key}{_MEMBER_NAMES[part]}", reason)
            raise ShardError(
                f"{where}: its {_MEMBER_NAMES[part]} cannot be read: {reason}"
            ) from None
        return sample


class _Reader:
    """Reads samples of shards in rising order, keeping the current shard open: a later
    sample of the same shard reads on; another shard, or an earlier sample, opens it anew
    (skipping the samples before the one wanted without reading their data)."""

    def __init__(self, dataset: ShardDataset) -> None:
        self.dataset = dataset
        self.shard: str | None = None
        self.records: Iterator[tuple[int, tuple[str, dict]]] | None = None
        self.next = 0

    def get(self, shard: str, index: int) -> tuple[str, str, dict[str, bytes]]:
        if shard != self.shard or index < self.next or self.records is None:
            self.shard, self.records, self.next = shard, self.dataset._read(shard, index), index
        for found, (key, members) in self.records:
            self.next = found + 1
            if found == index:
                return shard, key, members
        self.records = None
        raise ShardError(f"shard {shard} holds fewer samples than shards.json lists ({index + 1}+)")


def _shuffled(stream: Iterator[dict], size: int, rng: np.random.Generator) -> Iterator[dict]:
    """Shuffle a stream with a buffer of ``size`` samples (WebDataset's scheme)."""
    buffer: list[dict] = []
    for sample in stream:
        if len(buffer) < size:
            buffer.append(sample)
            continue
        i = int(rng.integers(0, size))
        buffer[i], sample = sample, buffer[i]
        yield sample
    order = rng.permutation(len(buffer))
    for i in order:
        yield buffer[int(i)]


def collate(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack a list of samples into a batch.

    Returns ``wav`` ``(B, clip_samples)``, ``feature`` ``(B, D)``, ``has_audio`` ``(B,)``
    bool, ``image`` ``(B, 3, 224, 224)`` uint8 and ``landmarks`` ``(B, 68, 2)`` when the
    samples have them, ``cursor`` ``(B, 4)`` int64 (training with shard counts: the loader
    worker, its samples yielded, block and block entry, for
    :meth:`ShardDataset.consumed_positions`), and ``key`` / ``speaker`` / ``meta`` lists.
    """
    if not samples:
        raise ValueError("cannot collate an empty batch")
    batch: dict[str, Any] = {
        "wav": torch.stack([s["wav"] for s in samples]),
        "feature": torch.stack([s["feature"] for s in samples]),
        "has_audio": torch.tensor([bool(s["has_audio"]) for s in samples]),
        "key": [s["key"] for s in samples],
        "speaker": [s["speaker"] for s in samples],
        "meta": [s["meta"] for s in samples],
    }
    for name in ("image", "landmarks"):
        if name in samples[0]:
            batch[name] = torch.stack([s[name] for s in samples])
    if "cursor" in samples[0]:  # training: (worker, yielded, block, entry) of each sample
        batch["cursor"] = torch.tensor([s["cursor"] for s in samples], dtype=torch.int64)
    return batch


def build_loader(
    dataset: ShardDataset,
    batch_size: int,
    num_workers: int = 2,
    drop_last: bool | None = None,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader over ``dataset`` with :func:`collate` (drops the last partial batch
    when training unless told otherwise; workers persist from one epoch to the next)."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=collate,
        drop_last=dataset.train if drop_last is None else drop_last,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
    )

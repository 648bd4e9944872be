"""Preprocessing: source segments -> shards of (audio, aligned face, landmarks, feature).

What happens to one segment (decode, choose the speaker, align, landmarks) is
:mod:`speech2face.data.segment`; this module runs it over a source: chunks, workers,
resumption, merging, and the face features, computed in batches.

Work is split into *chunks*: the segments of one split, in the source's order, cut into
blocks of ``shard_size``. Chunk ``k`` of split ``s`` is named ``s-%06d`` and writes

- ``shards/<name>.tar``: its kept samples (at most ``shard_size``), written under a
  temporary name and renamed when complete (no tar when nothing was kept);
- ``parts/<name>.json``: its manifest lines, failure lines and timings, renamed into place
  after the tar. The part file is the chunk's commit: a chunk is done exactly when it
  exists.

A run killed at any moment and started again with the same arguments redoes only the
chunks without a part file; chunk contents depend on nothing but the chunk's segments, so
the result equals an uninterrupted run's. ``run.json`` records the run's settings and a
SHA-256 of each chunk's items, and a rerun whose settings or source items differ is refused
(an edited source would otherwise mix old and new chunks). Machines split the work with
``shard_index`` / ``num_shards`` (chunk ``g`` in plan order belongs to ``g % num_shards``);
whichever job finds every part file present writes the merged ``manifest.jsonl``,
``failures.jsonl``, ``shards.json`` and ``stats.json``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import signal
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from speech2face.audio import SAMPLE_RATE
from speech2face.data.media import MediaError
from speech2face.data.segment import (
    EncoderFactory,
    KeptSample,
    PreprocessOptions,
    SegmentProcessor,
)
from speech2face.data.shards import TarSampleWriter, json_bytes, npy_bytes
from speech2face.data.sources import (
    MAX_KEY_LENGTH,
    SPLITS,
    BadRow,
    Item,
    Segment,
    Source,
    is_safe_key,
)
from speech2face.errors import ConfigError, S2FError
from speech2face.fileio import temporary_path, write_atomic
from speech2face.runlock import hold_directory

__all__ = [
    "FORMAT_VERSION",
    "Chunk",
    "OutputLayout",
    "PreprocessOptions",
    "SegmentProcessor",
    "merge_outputs",
    "plan_chunks",
    "preprocess",
    "process_chunk",
    "recompute_features",
    "build_target",
    "encoder_from_config",
    "source_from_config",
]

# Bump when the shard layout or what a sample holds changes (2: the speaker is chosen at the
# segment's start and followed by identity; face metadata gained tracked_frames & co.).
FORMAT_VERSION = 2
STAGES = ("locate", "audio", "video", "detect", "track", "align", "features", "write")
WATCHDOG_SECONDS = 1.0  # how often a worker checks that its parent is still alive
POLL_SECONDS = 0.2  # how often the parent refreshes the progress bar


@dataclass
class Chunk:
    """One unit of work: up to ``shard_size`` consecutive items of one split."""

    index: int  # position in the plan; job ``index % num_shards`` processes it
    name: str  # "<split>-<k:06d>"
    split: str
    items: list[Item] = field(default_factory=list)


def plan_chunks(items: Sequence[Item], shard_size: int) -> list[Chunk]:
    """Cut each split's items, in order, into chunks of ``shard_size``; splits in SPLITS order."""
    if shard_size < 1:
        raise ConfigError(f"shard_size must be >= 1, got {shard_size}")
    by_split: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        by_split[item.split].append(item)
    chunks: list[Chunk] = []
    for split in SPLITS:
        group = by_split.get(split, [])
        for k, start in enumerate(range(0, len(group), shard_size)):
            chunks.append(
                Chunk(
                    len(chunks), f"{split}-{k:06d}", split, list(group[start : start + shard_size])
                )
            )
    return chunks


@dataclass(frozen=True)
class OutputLayout:
    """Where everything lives under ``root``."""

    root: Path

    @property
    def shards(self) -> Path:
        return self.root / "shards"

    @property
    def parts(self) -> Path:
        return self.root / "parts"

    def shard(self, name: str) -> Path:
        return self.shards / f"{name}.tar"

    def part(self, name: str) -> Path:
        return self.parts / f"{name}.json"

    @property
    def run_file(self) -> Path:
        return self.root / "run.json"

    def make(self) -> None:
        try:
            self.shards.mkdir(parents=True, exist_ok=True)
            self.parts.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise S2FError(f"cannot create {self.root}: {error.strerror or error}") from None


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` torch CPU threads, then restore the previous count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _failure(item: Item, reason: str, detail: str) -> dict[str, Any]:
    if isinstance(item, BadRow):
        return {
            "key": item.key,
            "source": item.source,
            "split": item.split,
            "reason": "bad_row",
            "detail": item.detail,
            "row": item.row,
            "text": item.text,
        }
    line = {
        "key": item.key,
        "source": item.source,
        "split": item.split,
        "speaker": item.speaker,
        "reason": reason,
        "detail": detail,
        "start": round(item.start, 3),
        "end": None if item.end is None else round(item.end, 3),
    }
    if item.youtube_id is not None:
        line["youtube_id"] = item.youtube_id
    return line


# --------------------------------------------------------------------------- one chunk


def _write_chunk(
    chunk: Chunk,
    processor: SegmentProcessor,
    tmp: Path,
    shard: str,
    on_item: Callable[[bool], None] | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Process ``chunk``'s items into the tar ``tmp``; returns (manifest lines, failures)."""
    samples: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    with open(tmp, "wb") as f:
        writer = TarSampleWriter(f)
        pending: list[KeptSample] = []
        pending_items: list[Segment] = []

        def flush() -> None:
            if not pending:
                return
            feats = processor._timed(
                "features", lambda: processor.features([k.crop for k in pending])
            )
            for kept, feat, item in zip(pending, feats, pending_items, strict=True):
                kept.meta["feature_dim"] = int(feat.shape[0])
                kept.members["json"] = json_bytes(kept.meta)
                kept.members["feat.npy"] = npy_bytes(feat)
                try:  # writes nothing when it fails: the shard stays whole
                    processor._timed("write", lambda k=kept: writer.write(k.key, k.members))
                except ValueError as error:
                    failures.append(_failure(item, "internal_error", str(error)[:300]))
                    continue
                samples.append(kept.manifest | {"shard": shard})
            pending.clear()
            pending_items.clear()

        for item in chunk.items:
            kept = None
            if isinstance(item, BadRow):
                failures.append(_failure(item, "bad_row", item.detail))
            elif not is_safe_key(item.key):  # sources check keys; this one would not fit
                detail = f"key {item.key[:40]!r} is not [A-Za-z0-9_-]{{1,{MAX_KEY_LENGTH}}}"
                failures.append(_failure(item, "bad_row", detail))
            else:
                try:
                    kept = processor.process(item)
                except MediaError as error:
                    failures.append(_failure(item, error.reason, error.detail))
                except S2FError:
                    raise  # the setup is wrong (a model file missing...): stop, in one line
                except Exception as error:  # the run goes on; the detail says what happened
                    detail = f"{type(error).__name__}: {' '.join(str(error).split())}"[:300]
                    failures.append(_failure(item, "internal_error", detail))
            if kept is not None:
                pending.append(kept)
                pending_items.append(item)
                if len(pending) >= processor.feature_batch_size:
                    flush()
            if on_item is not None:
                on_item(kept is not None)
        flush()
        writer.close()
    return samples, failures


def process_chunk(
    chunk: Chunk,
    processor: SegmentProcessor,
    layout: OutputLayout,
    on_item: Callable[[bool], None] | None = None,
    before_commit: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Process every item of ``chunk`` and commit its shard and part file.

    ``on_item(kept)`` is called after each item (progress); ``before_commit()`` just before
    anything is renamed into place (a worker checks there that its run is still alive).
    Returns the part's summary.
    """
    started = time.perf_counter()
    processor.timings.clear()
    final = layout.shard(chunk.name)
    tmp = temporary_path(final)
    try:
        samples, failures = _write_chunk(chunk, processor, tmp, f"shards/{final.name}", on_item)
        if before_commit is not None:
            before_commit()
    except BaseException:
        tmp.unlink(missing_ok=True)  # no stray temporary file when a chunk fails
        raise
    if samples:
        os.replace(tmp, final)
    else:
        tmp.unlink(missing_ok=True)
        final.unlink(missing_ok=True)
    part = {
        "chunk": chunk.name,
        "split": chunk.split,
        "shard": f"shards/{final.name}" if samples else None,
        "items": len(chunk.items),
        "samples": samples,
        "failures": failures,
        "seconds": round(time.perf_counter() - started, 3),
        "stage_seconds": {k: round(v, 4) for k, v in sorted(processor.timings.items())},
    }
    write_atomic(layout.part(chunk.name), json.dumps(part, sort_keys=True).encode("utf-8"))
    return part


# --------------------------------------------------------------------------- workers

_WORKER: dict[str, Any] = {}


PR_SET_PDEATHSIG = 1  # prctl(2) option: a signal the kernel sends when the parent dies


def _die_with_parent(parent: int) -> None:
    """Make this worker die the moment its run does (SIGKILL included).

    On Linux the kernel sends SIGKILL on the parent's death (``PR_SET_PDEATHSIG``); a
    watchdog thread is the fallback elsewhere. A thread alone is not enough: it does not
    run while dlib or MTCNN hold the GIL, which let orphans commit a block seconds after
    their run was killed. :func:`_check_parent` before every commit closes the last gap,
    and the one here makes a worker still importing its modules when the run died exit
    before doing any work.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    _check_parent(parent)  # the parent may have died before prctl took effect
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _check_parent(parent: int) -> None:
    if os.getppid() != parent:
        os._exit(1)


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(WATCHDOG_SECONDS)
        _check_parent(parent)


def _init_worker(
    processor: SegmentProcessor, layout: OutputLayout, queue: Any, threads: int, parent: int
) -> None:
    import torch

    _die_with_parent(parent)
    torch.set_num_threads(threads)
    _WORKER.update(processor=processor, layout=layout, queue=queue, parent=parent)


def _run_chunk(chunk: Chunk) -> dict[str, Any]:
    queue = _WORKER["queue"]
    parent = _WORKER["parent"]
    _check_parent(parent)
    part = process_chunk(
        chunk,
        _WORKER["processor"],
        _WORKER["layout"],
        lambda kept: queue.put(kept),
        before_commit=lambda: _check_parent(parent),
    )
    return {
        "chunk": part["chunk"],
        "samples": len(part["samples"]),
        "failures": len(part["failures"]),
    }


class _Progress:
    """tqdm bar over segments: done, kept, failed and rate."""

    def __init__(self, total: int, initial: int, enabled: bool) -> None:
        from tqdm import tqdm

        self.kept = 0
        self.failed = 0
        self.bar = tqdm(
            total=total,
            initial=initial,
            unit="clip",
            disable=not enabled,
            dynamic_ncols=True,
            desc="preprocess",
        )

    def update(self, kept: bool) -> None:
        if kept:
            self.kept += 1
        else:
            self.failed += 1
        self.bar.update(1)
        self.bar.set_postfix(kept=self.kept, failed=self.failed, refresh=False)

    def close(self) -> None:
        self.bar.close()


def _run_parallel(
    chunks: list[Chunk],
    processor: SegmentProcessor,
    layout: OutputLayout,
    workers: int,
    threads: int,
    progress: _Progress,
) -> None:
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool
    from queue import Empty

    context = mp.get_context("spawn")  # no forked copies of torch / dlib state
    queue = context.Queue()

    def drain() -> None:
        while True:
            try:
                progress.update(queue.get_nowait())
            except Empty:
                return

    with ProcessPoolExecutor(
        max_workers=min(workers, len(chunks)),
        mp_context=context,
        initializer=_init_worker,
        initargs=(processor, layout, queue, threads, os.getpid()),
    ) as pool:
        pending = {pool.submit(_run_chunk, chunk) for chunk in chunks}
        try:
            while pending:
                done, pending = wait(pending, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
                drain()
                for future in done:
                    future.result()
        except BrokenProcessPool:
            raise S2FError("a worker process died; run the same command again to resume") from None
        except BaseException:
            for future in pending:
                future.cancel()
            raise
        finally:
            drain()


# --------------------------------------------------------------------------- configs


def build_target(spec: dict[str, Any]) -> Any:
    """Call ``spec["_target_"]`` with the other keys (a plain, picklable instantiate whose
    errors pass through unwrapped, so user errors stay one-line messages)."""
    from hydra.utils import get_object

    spec = dict(spec)
    target = spec.pop("_target_", None)
    if not isinstance(target, str):
        raise ConfigError("a config to build needs a _target_")
    try:
        factory = get_object(target)
    except Exception:
        raise ConfigError(f"cannot import {target}") from None
    try:
        return factory(**spec)
    except TypeError as error:
        raise ConfigError(f"{target}: {error}") from None


def _missing(key: str) -> Exception:
    return ConfigError(f"missing required value '{key}': pass {key}=...")


def source_from_config(node: Any) -> Source:
    """The source a ``configs/source/*.yaml`` node describes."""
    missing = sorted(_missing_keys(node))
    if missing:
        raise _missing(missing[0])  # the full key, e.g. source.csv
    return build_target(_container(node))


def encoder_from_config(node: Any) -> tuple[Callable[[], Any], str]:
    """``(factory, name)`` for a ``configs/face_encoder/*.yaml`` node; the factory builds
    the encoder in each worker, the name (the config choice) is recorded with features."""
    import functools

    from hydra.core.hydra_config import HydraConfig

    missing = sorted(_missing_keys(node))
    if missing:
        raise _missing(missing[0])
    spec = _container(node)
    name = None
    if HydraConfig.initialized():
        name = HydraConfig.get().runtime.choices.get("face_encoder")
    name = name or str(spec.get("_target_", "encoder")).rsplit(".", 1)[-1]
    factory = functools.partial(build_target, spec)
    factory()  # fail now, in one line, rather than in every worker
    return factory, str(name)


def _missing_keys(node: Any) -> set[str]:
    from omegaconf import OmegaConf

    return set(OmegaConf.missing_keys(node))


def _container(node: Any) -> dict[str, Any]:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(node, resolve=True)  # type: ignore[return-value]


# --------------------------------------------------------------------------- the run


def _run_identity(
    source: Source, options: PreprocessOptions, shard_size: int, encoder_name: str
) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "source": source.describe(),
        "options": asdict(options),
        "shard_size": shard_size,
        "face_encoder": encoder_name,
    }


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(value, dict):
        return {prefix: value}
    out: dict[str, Any] = {}
    for key, item in value.items():
        out |= _flatten(item, f"{prefix}.{key}" if prefix else str(key))
    return out


def _chunk_digest(chunk: Chunk) -> str:
    """SHA-256 of everything that defines a chunk's items (keys, times, face centres, media
    paths made absolute, speakers, splits, labels; bad rows' text)."""
    digest = hashlib.sha256()
    for item in chunk.items:
        fields = asdict(item)
        fields["kind"] = type(item).__name__
        for name in ("video", "audio", "image"):
            if fields.get(name):
                fields[name] = os.path.abspath(fields[name])
        line = json.dumps(fields, sort_keys=True, default=str, ensure_ascii=True)
        digest.update(line.encode("ascii") + b"\n")
    return digest.hexdigest()


def _check_run_file(layout: OutputLayout, identity: dict[str, Any], chunks: list[Chunk]) -> None:
    """Record the run's settings and plan; refuse to mix two different runs in one
    output_dir, and to resume a run whose source now gives other items."""
    chunk_names = [c.name for c in chunks]
    digests = {c.name: _chunk_digest(c) for c in chunks}
    record = {"identity": identity, "chunks": chunk_names, "chunk_sha256": digests}
    if layout.run_file.exists():
        try:
            previous = json.loads(layout.run_file.read_text())
        except (OSError, json.JSONDecodeError):
            previous = None
        if previous is not None and previous.get("identity") != identity:
            old, new = _flatten(previous.get("identity", {})), _flatten(identity)
            differ = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
            raise ConfigError(
                f"{layout.root} holds a run with other settings ({', '.join(differ) or 'format'});"
                " rerun with the same arguments to resume, or use a new output_dir"
            )
        if previous is not None and previous.get("chunks") != chunk_names:
            raise ConfigError(
                f"{layout.root} was planned from a different list of segments; "
                "the source changed since the first run: use a new output_dir"
            )
        before = previous.get("chunk_sha256") if previous is not None else None
        if isinstance(before, dict):
            changed = [name for name in chunk_names if before.get(name) != digests[name]]
            if changed:
                raise ConfigError(
                    f"{layout.root} was planned from other segments: the source changed since "
                    f"the first run ({len(changed)} chunk(s) differ, first {changed[0]}); "
                    "restore it to resume, or use a new output_dir"
                )
    write_atomic(layout.run_file, json.dumps(record, indent=1, sort_keys=True).encode("utf-8"))


def preprocess(
    source: Source,
    output_dir: str | Path,
    encoder_factory: EncoderFactory,
    encoder_name: str,
    options: PreprocessOptions | None = None,
    shard_size: int = 256,
    workers: int = 1,
    shard_index: int = 0,
    num_shards: int = 1,
    device: str = "auto",
    feature_batch_size: int = 32,
    threads: int = 1,
    progress: bool = True,
) -> dict[str, Any]:
    """Preprocess ``source`` into ``output_dir`` (see the module docstring); resumable.

    ``workers`` processes each run ``threads`` torch threads (on CPU the small convolutions
    of MTCNN and the face encoders run fastest single-threaded: scale with ``workers``).

    Returns ``stats.json``'s content once every chunk of the run is done, else a summary of
    this job's part (``{"complete": False, ...}``).
    """
    options = options or PreprocessOptions()
    if workers < 1 or threads < 1:
        raise ConfigError(f"workers and threads must be >= 1, got {workers} and {threads}")
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise ConfigError(f"need 0 <= shard_index < num_shards, got {shard_index} of {num_shards}")
    layout = OutputLayout(Path(output_dir))
    chunks = plan_chunks(source.segments(), shard_size)  # bad input fails before any output
    lock = "lock" if num_shards == 1 else f"{shard_index}-of-{num_shards}.lock"
    identity = _run_identity(source, options, shard_size, encoder_name)
    with hold_directory(layout.root, "s2f-preprocess", name=f".s2f.{lock}"):
        layout.make()
        with _recorded_run(layout, identity, chunks):
            return _run_chunks(
                source, layout, chunks, encoder_factory, encoder_name, options, workers,
                shard_index, num_shards, device, feature_batch_size, threads, progress,
            )  # fmt: skip


@contextlib.contextmanager
def _recorded_run(
    layout: OutputLayout, identity: dict[str, Any], chunks: list[Chunk]
) -> Iterator[None]:
    """Check and write run.json (:func:`_check_run_file`) for the block; a run that fails
    before committing any block leaves no record, so a rerun with other settings is not
    refused because of it."""
    new_run = not layout.run_file.exists()
    _check_run_file(layout, identity, chunks)
    try:
        yield
    except BaseException:
        if new_run and not any(layout.part(c.name).exists() for c in chunks):
            layout.run_file.unlink(missing_ok=True)
        raise


def _run_chunks(
    source: Source,
    layout: OutputLayout,
    chunks: list[Chunk],
    encoder_factory: EncoderFactory,
    encoder_name: str,
    options: PreprocessOptions,
    workers: int,
    shard_index: int,
    num_shards: int,
    device: str,
    feature_batch_size: int,
    threads: int,
    progress: bool,
) -> dict[str, Any]:
    mine = [c for c in chunks if c.index % num_shards == shard_index]
    todo = [c for c in mine if not layout.part(c.name).exists()]
    if todo and getattr(source, "download", False):
        from speech2face.data.download import check_prerequisites

        check_prerequisites(source.download_options)
    if todo:
        check_encoder_weights(encoder_factory)  # before any clip is decoded
    for chunk in todo:  # leftovers of a killed run
        stale = [*layout.shards.glob(f".{chunk.name}.tar.*.tmp")]
        for path in stale + [*layout.parts.glob(f".{chunk.name}.json.*.tmp")]:
            path.unlink(missing_ok=True)

    processor = SegmentProcessor(
        source, options, encoder_factory, encoder_name, device, feature_batch_size
    )
    total = sum(len(c.items) for c in mine)
    remaining = sum(len(c.items) for c in todo)
    bar = _Progress(total, total - remaining, progress)
    started = time.perf_counter()
    try:
        if workers == 1 or len(todo) <= 1:
            # The thread count a worker uses: results then match the parallel run's.
            with torch_threads(threads):
                for chunk in todo:
                    process_chunk(chunk, processor, layout, bar.update)
        else:
            _run_parallel(todo, processor, layout, workers, threads, bar)
    finally:
        bar.close()
    wall = time.perf_counter() - started
    run = {
        "segments": remaining,
        "wall_seconds": round(wall, 3),
        "clips_per_second": round(remaining / wall, 3) if wall > 0 else None,
        "workers": workers,
        "shard_index": shard_index,
        "num_shards": num_shards,
    }
    if all(layout.part(c.name).exists() for c in chunks):
        return merge_outputs(layout.root, this_run=run)
    done = sum(layout.part(c.name).exists() for c in chunks)
    return {"complete": False, "chunks_done": done, "chunks": len(chunks), "this_run": run}


def check_encoder_weights(encoder_factory: EncoderFactory) -> None:
    """Make sure the face encoder's weights are at hand before any work: an encoder that
    reads them lazily (VGG-Face, FaceNet) has them resolved now (downloaded when allowed,
    else a one-line error saying which file to put where)."""
    from speech2face.weights import resolve

    encoder = encoder_factory()
    pending = getattr(encoder, "_pending_weights", None)
    if pending is not None:
        resolve(pending)


# --------------------------------------------------------------------------- merging


def merge_outputs(output_dir: str | Path, this_run: dict[str, Any] | None = None) -> dict[str, Any]:
    """Merge the part files of a finished run into manifest.jsonl, failures.jsonl,
    shards.json and stats.json (each written atomically); returns the stats."""
    layout = OutputLayout(Path(output_dir))
    try:
        record = json.loads(layout.run_file.read_text())
    except (OSError, json.JSONDecodeError):
        raise S2FError(f"{layout.root} holds no preprocessing run (run.json missing)") from None
    names = record["chunks"]
    missing = [name for name in names if not layout.part(name).exists()]
    if missing:
        raise S2FError(
            f"{len(missing)} of {len(names)} chunks are not done yet (first: {missing[0]}); "
            "finish every shard_index first"
        )
    manifest: list[bytes] = []
    failures: list[bytes] = []
    shards: dict[str, list[dict[str, Any]]] = {split: [] for split in SPLITS}
    reasons: Counter[str] = Counter()
    kept: Counter[str] = Counter()
    hours: Counter[str] = Counter()
    speakers: dict[str, set[str]] = defaultdict(set)
    stage_seconds: Counter[str] = Counter()
    busy = 0.0
    for name in sorted(names):
        part = json.loads(layout.part(name).read_text())
        for line in part["samples"]:
            manifest.append(json.dumps(line, sort_keys=True).encode("utf-8"))
            kept[line["split"]] += 1
            hours[line["split"]] += line["duration"] / 3600
            speakers[line["split"]].add(line["speaker"])
        for line in part["failures"]:
            failures.append(json.dumps(line, sort_keys=True).encode("utf-8"))
            reasons[line["reason"]] += 1
        if part["shard"]:
            shards[part["split"]].append({"path": part["shard"], "samples": len(part["samples"])})
        stage_seconds.update(part["stage_seconds"])
        busy += part["seconds"]
    segments = sum(kept.values()) + sum(reasons.values())
    stats = {
        "segments": segments,
        "kept": sum(kept.values()),
        "failed": sum(reasons.values()),
        "failures_by_reason": dict(sorted(reasons.items())),
        "kept_by_split": {s: kept[s] for s in SPLITS},
        "speakers_by_split": {s: len(speakers[s]) for s in SPLITS},
        "hours_by_split": {s: round(hours[s], 4) for s in SPLITS},
        "shards": sum(len(v) for v in shards.values()),
        "chunks": len(names),
        "face_encoder": record["identity"]["face_encoder"],
        "shard_size": record["identity"]["shard_size"],
        "sample_rate": SAMPLE_RATE,
        "throughput": {
            "worker_seconds": round(busy, 3),
            "clips_per_worker_second": round(segments / busy, 3) if busy > 0 else None,
            "stage_seconds": {k: round(v, 3) for k, v in sorted(stage_seconds.items())},
        },
    }
    stats["feature_dim"] = _feature_dim(layout, shards)
    if this_run is not None:
        stats["this_run"] = this_run
    write_atomic(layout.root / "manifest.jsonl", b"".join(line + b"\n" for line in manifest))
    write_atomic(layout.root / "failures.jsonl", b"".join(line + b"\n" for line in failures))
    write_atomic(layout.root / "shards.json", json.dumps(shards, indent=1).encode("utf-8"))
    write_atomic(layout.root / "stats.json", json.dumps(stats, indent=1).encode("utf-8"))
    return stats


def _feature_dim(layout: OutputLayout, shards: dict[str, list[dict[str, Any]]]) -> int | None:
    """Width of the stored features, read from the first sample of the first shard."""
    from speech2face.data.shards import iter_tar_samples

    for entries in shards.values():
        for entry in entries:
            with open(layout.root / entry["path"], "rb") as f:
                for _, members in iter_tar_samples(f):
                    return int(json.loads(members["json"])["feature_dim"])
    return None


# --------------------------------------------------------------------------- features pass


def _rewrite_features(path: Path, processor: SegmentProcessor) -> tuple[int, int | None, bool]:
    """Recompute one shard's features; returns (samples, feature width, rewritten?)."""
    from PIL import Image

    from speech2face.data.shards import iter_tar_samples

    name = processor.encoder_name
    with open(path, "rb") as f:
        records = list(iter_tar_samples(f))
    metas = [json.loads(members["json"]) for _, members in records]
    if all(m.get("face_encoder") == name for m in metas):
        return len(records), (metas[0].get("feature_dim") if metas else None), False
    crops = []
    for _, members in records:
        with Image.open(io.BytesIO(members["jpg"])) as image:
            crops.append(np.asarray(image.convert("RGB")))
    feats = processor.features(crops)  # (B, D) float16
    tmp = temporary_path(path)
    with open(tmp, "wb") as f:
        writer = TarSampleWriter(f)
        for (key, members), meta, feat in zip(records, metas, feats, strict=True):
            meta["face_encoder"] = name
            meta["feature_dim"] = int(feat.shape[0])
            members["json"] = json_bytes(meta)
            members["feat.npy"] = npy_bytes(feat)
            writer.write(key, members)
        writer.close()
    os.replace(tmp, path)
    return len(records), int(feats.shape[1]), True


def recompute_features(
    output_dir: str | Path,
    encoder_factory: EncoderFactory,
    encoder_name: str,
    device: str = "auto",
    batch_size: int = 32,
    shard_index: int = 0,
    num_shards: int = 1,
    threads: int = 1,
    progress: bool = True,
) -> dict[str, Any]:
    """Rewrite every shard's ``.feat.npy`` with another face encoder, from the stored crops.

    No video is decoded. Each shard is rewritten under a temporary name and renamed, and a
    shard whose samples already carry ``encoder_name`` is skipped, so the pass resumes
    after a kill. Jobs of an array (``shard_index`` / ``num_shards``) rewrite their shards
    only; one more call with ``num_shards=1`` then finds nothing left to do and records the
    new encoder in run.json and stats.json. Returns
    ``{"shards": n, "rewritten": m, "samples": k, "feature_dim": D}``.
    """
    layout = OutputLayout(Path(output_dir))
    if not layout.run_file.exists():
        raise S2FError(f"{layout.root} holds no preprocessing run (run.json missing)")
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise ConfigError(f"need 0 <= shard_index < num_shards, got {shard_index} of {num_shards}")
    lock = "lock" if num_shards == 1 else f"{shard_index}-of-{num_shards}.lock"
    with hold_directory(layout.root, "s2f-preprocess action=features", name=f".s2f.{lock}"):
        check_encoder_weights(encoder_factory)
        return _recompute_locked(
            layout, encoder_factory, encoder_name, device, batch_size, shard_index, num_shards,
            threads, progress,
        )  # fmt: skip


def _recompute_locked(
    layout: OutputLayout,
    encoder_factory: EncoderFactory,
    encoder_name: str,
    device: str,
    batch_size: int,
    shard_index: int,
    num_shards: int,
    threads: int,
    progress: bool,
) -> dict[str, Any]:
    from tqdm import tqdm

    paths = sorted(layout.shards.glob("*.tar"))
    mine = [p for i, p in enumerate(paths) if i % num_shards == shard_index]
    processor = SegmentProcessor(
        source=None,  # type: ignore[arg-type]  (only the encoder is used)
        options=PreprocessOptions(),
        encoder_factory=encoder_factory,
        encoder_name=encoder_name,
        device=device,
        feature_batch_size=batch_size,
    )
    rewritten = samples = 0
    dim = None
    with torch_threads(threads):
        for path in tqdm(mine, unit="shard", desc="features", disable=not progress):
            count, width, changed = _rewrite_features(path, processor)
            samples += count
            rewritten += changed
            dim = width or dim
    if num_shards == 1:
        record = json.loads(layout.run_file.read_text())
        record["identity"]["face_encoder"] = encoder_name
        write_atomic(layout.run_file, json.dumps(record, indent=1, sort_keys=True).encode("utf-8"))
        stats_path = layout.root / "stats.json"
        if stats_path.exists():
            stats = json.loads(stats_path.read_text())
            stats["face_encoder"] = encoder_name
            stats["feature_dim"] = dim
            write_atomic(stats_path, json.dumps(stats, indent=1).encode("utf-8"))
    return {"shards": len(mine), "rewritten": rewritten, "samples": samples, "feature_dim": dim}

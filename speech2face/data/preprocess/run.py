"""The preprocessing run: plan the chunks, lock the output directory, record and check
``run.json``, run this job's chunks (in-process or on the worker pool) and merge at the end.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from speech2face.data.preprocess.chunk import process_chunk
from speech2face.data.preprocess.layout import (
    Chunk,
    OutputLayout,
    check_encoder_weights,
    plan_chunks,
    torch_threads,
)
from speech2face.data.preprocess.merge import merge_outputs
from speech2face.data.preprocess.workers import Progress, run_parallel
from speech2face.data.segment import EncoderFactory, PreprocessOptions, SegmentProcessor
from speech2face.data.sources import Source
from speech2face.errors import ConfigError
from speech2face.fileio import write_atomic
from speech2face.runlock import hold_directory

__all__ = ["FORMAT_VERSION", "preprocess"]

# Bump when the shard layout or what a sample holds changes (2: the speaker is chosen at the
# segment's start and followed by identity; face metadata gained tracked_frames & co.).
FORMAT_VERSION = 2
STAGES = ("locate", "audio", "video", "detect", "track", "align", "features", "write")


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
    bar = Progress(total, total - remaining, progress)
    started = time.perf_counter()
    try:
        if workers == 1 or len(todo) <= 1:
            # The thread count a worker uses: results then match the parallel run's.
            with torch_threads(threads):
                for chunk in todo:
                    process_chunk(chunk, processor, layout, bar.update)
        else:
            run_parallel(todo, processor, layout, workers, threads, bar)
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

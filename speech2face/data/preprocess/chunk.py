"""Writing one chunk: its items processed into one shard, kept samples' features computed
in batches, and the part file (manifest and failure lines, timings) that commits it.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from speech2face.data.keys import MAX_KEY_LENGTH, is_safe_key
from speech2face.data.media import MediaError
from speech2face.data.preprocess.layout import Chunk, OutputLayout
from speech2face.data.segment import KeptSample, SegmentProcessor
from speech2face.data.shards import TarSampleWriter, json_bytes, npy_bytes
from speech2face.data.sources import BadRow, Item, Segment
from speech2face.errors import S2FError
from speech2face.fileio import temporary_path, write_atomic

__all__ = ["process_chunk"]


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


def shuffled_items(chunk: Chunk) -> list[Item]:
    """The chunk's items in the order its shard holds them: shuffled with the chunk's name as
    the seed (the same on every machine and rerun), so that the segments of one video, which
    a source lists one after another, are spread over the shard."""
    items = list(chunk.items)
    random.Random(f"rows:{chunk.name}").shuffle(items)
    return items


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

        for item in shuffled_items(chunk):
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

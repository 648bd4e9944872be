"""Merging a finished run's part files into ``manifest.jsonl``, ``failures.jsonl``,
``shards.json`` and ``stats.json``.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from speech2face.audio import SAMPLE_RATE
from speech2face.data.preprocess.layout import OutputLayout
from speech2face.data.sources import SPLITS
from speech2face.errors import S2FError
from speech2face.fileio import write_atomic

__all__ = ["merge_outputs"]


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

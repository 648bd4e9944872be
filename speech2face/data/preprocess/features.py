"""The features pass: every shard's face features recomputed with another encoder from the
stored crops, shard by shard, resumable.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from speech2face.data.preprocess.layout import OutputLayout, check_encoder_weights, torch_threads
from speech2face.data.segment import EncoderFactory, PreprocessOptions, SegmentProcessor
from speech2face.data.shards import TarSampleWriter, json_bytes, npy_bytes
from speech2face.errors import ConfigError, S2FError
from speech2face.fileio import temporary_path, write_atomic
from speech2face.runlock import hold_directory

__all__ = ["recompute_features"]


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

"""Preprocessing: source segments -> shards of (audio, aligned face, landmarks, feature).

What happens to one segment (decode, choose the speaker, align, landmarks) is
:mod:`speech2face.data.segment`; this package runs it over a source: chunks, workers,
resumption, merging, and the face features, computed in batches. Its modules:
:mod:`~.run` (the run and ``run.json``), :mod:`~.layout` (chunks and the output layout),
:mod:`~.chunk` (one chunk into one shard and its part file), :mod:`~.workers` (the worker
pool), :mod:`~.merge` (the merged manifests and stats), :mod:`~.features` (the features
pass) and :mod:`~.config` (sources and encoders from Hydra configs).

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

from speech2face.data.preprocess.chunk import process_chunk
from speech2face.data.preprocess.config import build_target, encoder_from_config, source_from_config
from speech2face.data.preprocess.features import recompute_features
from speech2face.data.preprocess.layout import (
    Chunk,
    OutputLayout,
    check_encoder_weights,
    plan_chunks,
    torch_threads,
)
from speech2face.data.preprocess.merge import merge_outputs
from speech2face.data.preprocess.run import FORMAT_VERSION, preprocess
from speech2face.data.segment import PreprocessOptions, SegmentProcessor

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
    "check_encoder_weights",
    "encoder_from_config",
    "source_from_config",
    "torch_threads",
]

"""The plan and the places of a preprocessing run: chunks of items, the output directory's
layout, and the setup that runs and feature passes share (torch threads, encoder weights).
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from speech2face.data.segment import EncoderFactory
from speech2face.data.sources import SPLITS, Item
from speech2face.errors import ConfigError, S2FError

__all__ = ["Chunk", "OutputLayout", "check_encoder_weights", "plan_chunks", "torch_threads"]


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


def check_encoder_weights(encoder_factory: EncoderFactory) -> None:
    """Make sure the face encoder's weights are at hand before any work: an encoder that
    reads them lazily (VGG-Face, FaceNet) has them resolved now (downloaded when allowed,
    else a one-line error saying which file to put where)."""
    from speech2face.weights import resolve

    encoder = encoder_factory()
    pending = getattr(encoder, "_pending_weights", None)
    if pending is not None:
        resolve(pending)

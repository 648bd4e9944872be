"""Preprocessing writes each shard's rows in an order shuffled with the shard's name: the
segments of one video, listed one after another by a source, are spread over the shard,
the same way on every run."""

from __future__ import annotations

from speech2face.data.preprocess.chunk import shuffled_items
from speech2face.data.preprocess.layout import plan_chunks
from speech2face.data.sources import Segment


def test_rows_are_shuffled_per_shard_and_the_same_every_run():
    items = [Segment(f"v{n // 4:03d}_{n % 4}", "avspeech", f"v{n // 4:03d}", "train")
             for n in range(512)]  # fmt: skip
    chunks = plan_chunks(items, 256)
    for chunk in chunks:
        order = shuffled_items(chunk)
        assert sorted(i.key for i in order) == sorted(i.key for i in chunk.items)
        assert [i.key for i in order] == [i.key for i in shuffled_items(chunk)]
        neighbours = sum(a.speaker == b.speaker for a, b in zip(order, order[1:], strict=False))
        assert neighbours < 10  # in source order: 3 of every 4 neighbours share a video

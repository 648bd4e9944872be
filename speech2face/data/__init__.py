"""Data: sources (AVSpeech, VoxCeleb2, manifests), preprocessing into shards, the dataset.

- :mod:`speech2face.data.sources`: enumerate segments, validate IDs and paths, splits.
- :mod:`speech2face.data.keys`: sample keys, YouTube IDs and video extensions (shared by
  the sources and :mod:`speech2face.data.download`).
- :mod:`speech2face.data.preprocess`: segments -> WebDataset-style shards + manifest
  (``s2f-preprocess``), resumable, parallel, splittable across machines.
- :mod:`speech2face.data.dataset`: :class:`ShardDataset`, which streams shards for
  training (DDP ranks x loader workers), and :func:`collate`.
- :mod:`speech2face.data.synthetic`: a small synthetic talking-face corpus for tests and
  the demo.
"""

from speech2face.data.dataset import ShardDataset, build_loader, collate, expand_urls, shard_urls

__all__ = ["ShardDataset", "build_loader", "collate", "expand_urls", "shard_urls"]

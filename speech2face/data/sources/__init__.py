"""Where segments come from: AVSpeech, VoxCeleb2 and generic manifests.

A source enumerates :class:`Segment` items (and :class:`BadRow` items for rows it cannot
use) in a fixed order, validates every ID and path it reads from a data file, assigns each
speaker to a split, and finds a segment's media when a worker asks for it
(:meth:`Source.locate`), downloading it first where that is enabled.

Split rule: a source's ``split`` option sends every segment to that split (AVSpeech's test
CSV is ``split=test``); otherwise a speaker goes to ``test`` when a hash of its ID falls
below ``test_fraction``, to ``val`` below ``test_fraction + val_fraction``, else to
``train``. Splits are therefore speaker-disjoint and the same on every machine and run.

One module per source (:mod:`~.avspeech`, :mod:`~.voxceleb2`, :mod:`~.manifest`); the
records, the split rule and the CSV and path checks they share are :mod:`~.common`.
"""

from speech2face.data.keys import (
    KEY_PATTERN,
    MAX_KEY_LENGTH,
    VIDEO_EXTENSIONS,
    YOUTUBE_ID,
    fit_key,
    is_safe_key,
)
from speech2face.data.sources.avspeech import AVSpeechSource
from speech2face.data.sources.common import (
    SPLITS,
    BadRow,
    Item,
    Media,
    Segment,
    Source,
    SourceError,
    speaker_split,
)
from speech2face.data.sources.manifest import ManifestSource
from speech2face.data.sources.voxceleb2 import VoxCeleb2Source

__all__ = [
    "KEY_PATTERN",
    "MAX_KEY_LENGTH",
    "SPLITS",
    "VIDEO_EXTENSIONS",
    "YOUTUBE_ID",
    "AVSpeechSource",
    "BadRow",
    "Item",
    "Media",
    "ManifestSource",
    "Segment",
    "Source",
    "SourceError",
    "VoxCeleb2Source",
    "fit_key",
    "is_safe_key",
    "speaker_split",
]

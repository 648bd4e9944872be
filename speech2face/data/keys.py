"""Names that reach tar members, file names and URLs: sample keys, YouTube IDs, video
file extensions, and the checks that keep them safe.

Sources (:mod:`speech2face.data.sources`) and the downloader
(:mod:`speech2face.data.download`) both check names with these; neither imports the other
for them.
"""

from __future__ import annotations

import hashlib
import re

__all__ = [
    "KEY_PATTERN",
    "MAX_KEY_LENGTH",
    "VIDEO_EXTENSIONS",
    "YOUTUBE_ID",
    "fit_key",
    "is_safe_key",
    "sanitize",
]

# Patterns that validate input are used with ``fullmatch`` and end in ``\Z`` (``$`` would
# accept a trailing newline).
YOUTUBE_ID = re.compile(r"\A[A-Za-z0-9_-]{11}\Z")
# Sample keys become tar member names "<key>.<ext>": no dots (WebDataset splits the key at
# the first dot), no separators, nothing a shell would interpret. Shards are USTAR tar
# files, whose member names hold at most 100 characters: the key plus its longest suffix
# (".lm68.npy", ".feat.npy": 9 characters) must fit.
MAX_KEY_LENGTH = 91
KEY_PATTERN = re.compile(rf"\A[A-Za-z0-9_-]{{1,{MAX_KEY_LENGTH}}}\Z")
KEY_HASH_CHARS = 10  # hex digits of SHA-256 that end a shortened key
SAFE_NAME = re.compile(r"\A[A-Za-z0-9_-]+\Z")  # a part of a generated key (any length)
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".mov", ".m4v", ".avi", ".flv", ".3gp")


def is_safe_key(key: str) -> bool:
    """Whether ``key`` can name tar members and files: ``[A-Za-z0-9_-]``, 1 to
    :data:`MAX_KEY_LENGTH` characters."""
    return isinstance(key, str) and KEY_PATTERN.fullmatch(key) is not None


def fit_key(key: str) -> str:
    """``key`` (made of ``[A-Za-z0-9_-]``) shortened to :data:`MAX_KEY_LENGTH` characters:
    unchanged when it fits, else its start, ``-`` and the first hex digits of its SHA-256
    (deterministic, and distinct for distinct long keys)."""
    if len(key) <= MAX_KEY_LENGTH:
        return key
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:KEY_HASH_CHARS]
    return f"{key[: MAX_KEY_LENGTH - KEY_HASH_CHARS - 1]}-{digest}"


def sanitize(text: str) -> str:
    """``text`` with every character outside ``[A-Za-z0-9_-]`` replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)[:80] or "_"

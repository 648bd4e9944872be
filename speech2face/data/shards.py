"""The shard format: WebDataset-compatible tar files, written deterministically.

A sample ``<key>`` is a run of consecutive members sharing the key (WebDataset's
convention: the key ends at the first dot of the member's name):

=====================  ==========================================================
``<key>.json``         metadata: speaker, split, times, labels, face box/landmarks
``<key>.wav``          the whole segment, mono 16 kHz int16 PCM (absent: face-only)
``<key>.jpg``          the aligned 224x224 RGB face crop
``<key>.lm68.npy``     dlib's 68 landmarks in crop pixels, float32 ``(68, 2)``
``<key>.feat.npy``     the face encoder's feature of the crop, float16 ``(D,)``
=====================  ==========================================================

Members carry fixed metadata (mtime 0, uid/gid 0, mode 0644), so the same samples give
byte-identical shards on any machine. Shards are USTAR tar files (readable by every tar
implementation, WebDataset included), whose member names hold at most
:data:`MAX_MEMBER_NAME` characters; keys are kept short enough for that
(:data:`speech2face.data.keys.MAX_KEY_LENGTH`).
"""

from __future__ import annotations

import io
import json
import tarfile
import wave
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from speech2face.audio import SAMPLE_RATE

__all__ = [
    "SAMPLE_EXTENSIONS",
    "TarSampleWriter",
    "decode_wav",
    "encode_wav",
    "iter_tar_samples",
    "json_bytes",
    "npy_bytes",
    "read_npy",
    "write_tar",
]

SAMPLE_EXTENSIONS = ("json", "wav", "jpg", "lm68.npy", "feat.npy")  # member order in a sample
MAX_MEMBER_NAME = 100  # characters in a USTAR member name (no directory part)


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def read_npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def encode_wav(pcm: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """``pcm``: ``(T,)`` int16 mono -> a RIFF/WAVE file's bytes."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(np.ascontiguousarray(pcm, dtype="<i2").tobytes())
    return buffer.getvalue()


def decode_wav(data: bytes) -> tuple[np.ndarray, int]:
    """Bytes of a 16-bit mono WAVE file -> ``((T,) int16, sample rate)``."""
    with wave.open(io.BytesIO(data), "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError("expected 16-bit mono PCM")
        rate = w.getframerate()
        frames = w.readframes(w.getnframes())
    return np.frombuffer(frames, dtype="<i2"), rate


class TarSampleWriter:
    """Append samples to an open tar stream with fixed member metadata."""

    def __init__(self, fileobj: IO[bytes]) -> None:
        self._tar = tarfile.open(  # noqa: SIM115 (closed by close())
            fileobj=fileobj, mode="w", format=tarfile.USTAR_FORMAT
        )
        self.count = 0

    def write(self, key: str, members: dict[str, bytes]) -> None:
        """Write ``<key>.<ext>`` for each ``ext -> bytes`` in :data:`SAMPLE_EXTENSIONS` order.

        Raises ``ValueError``, having written nothing, when a name cannot be stored.
        """
        order = [ext for ext in SAMPLE_EXTENSIONS if ext in members]
        order += sorted(ext for ext in members if ext not in SAMPLE_EXTENSIONS)
        for ext in order:
            name = f"{key}.{ext}"
            if len(name) > MAX_MEMBER_NAME or not name.isascii() or "/" in name:
                raise ValueError(f"cannot store tar member {name[:120]!r}")
        for ext in order:
            data = members[ext]
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            self._tar.addfile(info, io.BytesIO(data))
        self.count += 1

    def close(self) -> None:
        self._tar.close()


def write_tar(path: Path, samples: Iterable[tuple[str, dict[str, bytes]]]) -> int:
    """Write ``samples`` (key, members) to ``path``; returns how many were written."""
    with open(path, "wb") as f:
        writer = TarSampleWriter(f)
        for key, members in samples:
            writer.write(key, members)
        writer.close()
        return writer.count


def iter_tar_samples(
    fileobj: IO[bytes], skip: int = 0, seekable: bool = False
) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Stream ``(key, {ext: bytes})`` from a tar file object, one sample per key run.

    Reads sequentially (``r|``), so it works on HTTP responses as well as files. ``skip``:
    leave out the first ``skip`` samples without reading their members' data; with
    ``seekable`` (a local file) only their 512-byte headers are read, the data is seeked over.
    """
    key: str | None = None
    members: dict[str, bytes] = {}
    index = -1  # of the sample ``key`` names
    with tarfile.open(fileobj=fileobj, mode="r:" if seekable else "r|") as tar:
        for info in tar:
            if not info.isfile():
                continue
            name = info.name.rsplit("/", 1)[-1]
            if name.startswith(".") or "." not in name:
                continue
            member_key, ext = name.split(".", 1)
            if member_key != key:
                if key is not None and index >= skip:
                    yield key, members
                key, members = member_key, {}
                index += 1
            if index < skip:
                continue
            data = tar.extractfile(info)
            members[ext] = data.read() if data is not None else b""
    if key is not None and index >= skip:
        yield key, members


def json_bytes(value: dict[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode("utf-8")

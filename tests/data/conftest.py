"""Shared fixtures: one synthetic corpus with injected bad inputs, preprocessed once.

The corpus is built and preprocessed once per session (by the real ``s2f-preprocess``
command in a subprocess); tests that change outputs work on copies.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.media import tone, write_av

NUM_SPEAKERS = 6
CLIPS_PER_SPEAKER = 2
SEED = 7
SHARD_SIZE = 3  # small shards: several chunks, so a killed run resumes part-way
FRAMES_PER_CLIP = 3


@dataclass(frozen=True)
class Corpus:
    root: Path
    csv: Path
    videos: Path
    labels: Path
    good_rows: list[list[str]]  # rows that must become samples
    expected_failures: dict[str, str]  # failure key -> reason


def s2f_command(name: str) -> list[str]:
    """The installed ``s2f-<name>`` script, else ``python -m speech2face <name>``."""
    script = Path(sys.executable).with_name(f"s2f-{name}")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "speech2face", name]


def run_s2f(name: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*s2f_command(name), *args], capture_output=True, text=True, timeout=timeout
    )


def _bad_inputs(videos: Path, good_id: str, good_row: list[str]) -> list[tuple[str, str]]:
    """Write broken media into ``videos``; return ``(CSV line, expected reason)`` pairs."""
    rng = np.random.default_rng(0)
    real = (videos / f"{good_id}.mp4").read_bytes()
    (videos / "corruptFil1.mp4").write_bytes(rng.integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    (videos / "truncatedV1.mp4").write_bytes(real[: len(real) // 3])
    (videos / "emptyFile01.mp4").write_bytes(b"")
    write_av(videos / "audioOnly01.mp4", tone(220, 5.0, 16_000), 16_000)
    write_av(videos / "videoOnly01.mp4", None, video_seconds=5.0)
    write_av(videos / "noFaceClip1.mp4", tone(180, 5.0, 16_000), 16_000, video_seconds=5.0)
    return [
        ("corruptFil1,0.0,4.0,0.5,0.5", "decode_error"),
        ("truncatedV1,0.5,4.5,0.5,0.5", "decode_error"),
        ("emptyFile01,0.0,4.0,0.5,0.5", "decode_error"),
        ("audioOnly01,0.0,4.0,0.5,0.5", "no_video_stream"),
        ("videoOnly01,0.0,4.0,0.5,0.5", "no_audio_stream"),
        ("noFaceClip1,0.0,4.0,0.5,0.5", "no_face"),
        ("missingVid1,0.0,4.0,0.5,0.5", "missing_file"),
        (f"{good_id},0.100000,2.000000,0.5,0.5", "too_short"),  # a 1.9 s segment
        (f"{good_id},60.000000,65.000000,0.5,0.5", "too_short"),  # past the video's end
        ("tooFewFields,1,2", "bad_row"),
        ("badNumber01,abc,5.0,0.5,0.5", "bad_row"),
        ("../../etc/p,0.0,4.0,0.5,0.5", "bad_row"),  # path separators
        ("$(rm -rf x),0.0,4.0,0.5,0.5", "bad_row"),  # shell characters
        ("a;b|c&d>e<f,0.0,4.0,0.5,0.5", "bad_row"),
        ("faceOutside,0.0,4.0,1.5,0.5", "bad_row"),  # face centre outside the frame
        (",".join(good_row), "bad_row"),  # a duplicate of a good row
    ]


def _failure_key(line_number: int, text: str, reason: str) -> str:
    """The key failures.jsonl gives a row: its segment key, or its line for a bad row."""
    if reason == "bad_row":
        return f"avspeech-row{line_number:09d}"
    fields = text.split(",")
    return f"{fields[0]}_{round(float(fields[1]) * 1000):08d}"


def contract_args(corpus: Corpus, out: Path, *extra: str) -> list[str]:
    """The documented invocation, plus ``extra`` overrides."""
    return [
        "source=avspeech",
        f"source.csv={corpus.csv}",
        f"source.video_dir={corpus.videos}/",
        "face_encoder=dlib",
        "workers=2",
        f"output_dir={out}/",
        *extra,
    ]


def run_options(corpus: Corpus) -> list[str]:
    """Small shards and few frames keep tests fast; half the speakers go to val/test."""
    return [
        f"shard_size={SHARD_SIZE}",
        f"frames_per_clip={FRAMES_PER_CLIP}",
        "source.val_fraction=0.3",
        "source.test_fraction=0.2",
        f"source.labels={corpus.labels}",
    ]


@pytest.fixture
def no_proxy(monkeypatch):
    """Local HTTP servers must not go through a proxy from the environment."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    return os.environ


def damaged_copy(source: Path, target: Path, ext: str, payload: bytes | None) -> dict[str, str]:
    """A copy of the preprocessed output ``source`` at ``target`` whose shards each have the
    ``ext`` member of their first sample replaced by ``payload`` (dropped when ``None``).
    Returns each damaged shard's path -> the key of its first sample."""
    import io
    import shutil
    import tarfile

    shutil.copytree(source, target)
    first: dict[str, str] = {}
    for shard in sorted((target / "shards").glob("*.tar")):
        out = io.BytesIO()
        with tarfile.open(shard) as old, tarfile.open(fileobj=out, mode="w") as new:
            for member in old.getmembers():
                key, member_ext = member.name.split(".", 1)
                first.setdefault(str(shard), key)
                data = old.extractfile(member).read()
                if key == first[str(shard)] and member_ext == ext:
                    if payload is None:
                        continue
                    data = payload
                member.size = len(data)
                new.addfile(member, io.BytesIO(data))
        shard.write_bytes(out.getvalue())
    return first


# Damage to one member of a sample -> (ext, payload (None: the member is missing), what the
# one-line error says).
DAMAGED_MEMBERS = {
    "no-json": ("json", None, "has no .json member"),
    "bad-json": ("json", b'{"speaker": ', "its .json cannot be read"),
    "not-wav": ("wav", b"ID3\x03\x00 an mp3 tag, not a WAVE file", "its .wav cannot be read"),
    "bad-npy": ("feat.npy", b"\x93NUMPY\x01\x00\x10\x00{'descr': <f2'}\n", "its .feat.npy cannot"),
    "bad-jpg": ("jpg", b"GIF89a, or so it says", "its .jpg cannot be read"),
}


def names_a_damaged_sample(line: str, first: dict[str, str]) -> bool:
    """Whether an error line names one of the damaged shards with its damaged sample."""
    return any(f"shard {shard}, sample {key}:" in line for shard, key in first.items())

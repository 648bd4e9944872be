"""Where segments come from: AVSpeech, VoxCeleb2 and generic manifests.

A source enumerates :class:`Segment` items (and :class:`BadRow` items for rows it cannot
use) in a fixed order, validates every ID and path it reads from a data file, assigns each
speaker to a split, and finds a segment's media when a worker asks for it
(:meth:`Source.locate`), downloading it first where that is enabled.

Split rule: a source's ``split`` option sends every segment to that split (AVSpeech's test
CSV is ``split=test``); otherwise a speaker goes to ``test`` when a hash of its ID falls
below ``test_fraction``, to ``val`` below ``test_fraction + val_fraction``, else to
``train``. Splits are therefore speaker-disjoint and the same on every machine and run.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from speech2face.data.keys import (
    KEY_PATTERN,
    MAX_KEY_LENGTH,
    SAFE_NAME,
    VIDEO_EXTENSIONS,
    YOUTUBE_ID,
    fit_key,
    is_safe_key,
    sanitize,
)
from speech2face.errors import S2FError

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

SPLITS = ("train", "val", "test")
VOXCELEB_SPEAKER = re.compile(r"\Aid\d{5}\Z")
MAX_ROW_TEXT = 200  # characters of a bad row kept in failures.jsonl
LABEL_FIELDS = ("gender", "age", "ethnicity")
GENDERS = {"m": "male", "male": "male", "f": "female", "female": "female"}


class SourceError(S2FError, ValueError):
    """A source that cannot be read at all (missing CSV, unreadable directory)."""


def _require_file(path: Path, what: str) -> None:
    """:class:`SourceError` unless ``path`` is a regular file, saying what it is instead."""
    if path.is_dir():
        raise SourceError(f"{what} {path} is a directory, not a file")
    if not path.exists():
        raise SourceError(f"{what} not found: {path}")
    if not path.is_file():
        raise SourceError(f"{what} {path} is not a regular file")


@dataclass(frozen=True, slots=True)
class Segment:
    """One stretch of one recording: the unit that becomes (at most) one sample.

    ``start``/``end`` are seconds into the media (``end`` ``None``: to the end, capped by the
    preprocessing's ``max_seconds``); ``face_xy`` is the speaker's face centre normalised to
    [0, 1] (x right, y down) when the source gives it. ``video``/``audio``/``image`` are
    paths; AVSpeech segments carry ``youtube_id`` instead and are located by the source.
    """

    key: str
    source: str
    speaker: str
    split: str
    start: float = 0.0
    end: float | None = None
    face_xy: tuple[float, float] | None = None
    video: str | None = None
    audio: str | None = None
    image: str | None = None
    youtube_id: str | None = None
    labels: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BadRow:
    """A row of a data file that names no usable segment; it is recorded, not processed."""

    key: str
    source: str
    split: str
    row: int
    text: str
    detail: str


Item = Segment | BadRow


@dataclass(frozen=True, slots=True)
class Media:
    """Files for one segment; ``offset`` is where the segment starts inside them (s)."""

    video: Path | None = None
    audio: Path | None = None
    image: Path | None = None
    offset: float = 0.0
    downloaded: bool = False


def speaker_split(speaker: str, val_fraction: float, test_fraction: float) -> str:
    """Deterministic split of a speaker: a SHA-256 of its ID read as a number in [0, 1)."""
    digest = hashlib.sha256(speaker.encode("utf-8", "surrogatepass")).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


def _number(value: Any, name: str, minimum: float, integer: bool = False) -> float:
    """``value`` checked to be a finite number (an integer when asked) >= ``minimum``."""
    kind = int if integer else int | float
    if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value):
        what = "an integer" if integer else "a finite number"
        raise SourceError(f"{name} must be {what}, got {_clip_text(repr(value))[:60]}")
    if value < minimum:
        raise SourceError(f"{name} must be >= {minimum}, got {value}")
    return value


def _check_fractions(split: str | None, val_fraction: float, test_fraction: float) -> None:
    if split is not None and split not in SPLITS:
        raise SourceError(f"split must be one of {', '.join(SPLITS)} or null, got '{split}'")
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        _number(value, name, 0.0)
        if not 0.0 <= value <= 1.0:
            raise SourceError(f"{name} must be in [0, 1], got {value}")
    if val_fraction + test_fraction > 1.0:
        raise SourceError("val_fraction + test_fraction must not exceed 1")


def _bad_row_key(source: str, row: int) -> str:
    return f"{source}-row{row:09d}"


def _clip_text(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_ROW_TEXT else text[:MAX_ROW_TEXT] + "..."


def _finite(text: str, name: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{name} is not a number: {str(text)[:40]!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} is not finite")
    return value


def _label_value(value: Any) -> Any:
    """CSV text -> bool / int / float / str (empty -> None)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text == "":
        return None
    if text in ("True", "False"):
        return text == "True"
    for cast in (int, float):
        try:
            number = cast(text)
        except ValueError:
            continue
        if not (isinstance(number, float) and not math.isfinite(number)):
            return number
    return text


def _normalise_labels(raw: dict[str, Any]) -> dict[str, Any]:
    labels = {k.strip(): _label_value(v) for k, v in raw.items() if k and k.strip()}
    gender = labels.get("gender")
    if isinstance(gender, str):
        labels["gender"] = GENDERS.get(gender.strip().lower(), gender.strip().lower())
    return {k: v for k, v in labels.items() if v is not None}


class Source:
    """Base class: ``segments()`` in a fixed order, ``locate(segment)`` in a worker."""

    name = "source"

    def __init__(self, split: str | None, val_fraction: float, test_fraction: float) -> None:
        _check_fractions(split, val_fraction, test_fraction)
        self.split = split
        self.val_fraction = float(val_fraction)
        self.test_fraction = float(test_fraction)

    def split_of(self, speaker: str) -> str:
        if self.split is not None:
            return self.split
        return speaker_split(speaker, self.val_fraction, self.test_fraction)

    def segments(self) -> list[Item]:
        raise NotImplementedError

    def release(self, media: Media) -> None:
        """Called once a segment's media is processed (or rejected)."""

    def locate(self, segment: Segment) -> Media:
        """The files of ``segment``; raises ``MediaError`` (a failure reason) if absent."""
        from speech2face.data.media import MediaError

        paths = {k: getattr(segment, k) for k in ("video", "audio", "image")}
        found: dict[str, Path | None] = {}
        for kind, value in paths.items():
            if value is None:
                found[kind] = None
                continue
            path = Path(value)
            if not path.is_file():
                raise MediaError("missing_file", f"{kind} file not found: {path.name}")
            found[kind] = path
        return Media(found["video"], found["audio"], found["image"], offset=segment.start)

    def describe(self) -> dict[str, Any]:
        """What defines the enumeration (recorded in run.json to catch mixed settings)."""
        return {
            "name": self.name,
            "split": self.split,
            "val_fraction": self.val_fraction,
            "test_fraction": self.test_fraction,
        }


# --------------------------------------------------------------------------- AVSpeech


def _read_labels(path: str | Path | None, id_field: str) -> dict[str, dict[str, Any]]:
    """Optional per-video attributes: CSV with a header naming ``id_field`` (and
    ``speaker``, ``gender``, ``age``, ``ethnicity``, ... columns)."""
    if path is None:
        return {}
    path = Path(path)
    _require_file(path, "labels file")
    rows = _read_csv_table(path, "labels file")
    fields = [name.strip() for name in (rows[0] if rows else [])]
    if id_field not in fields:
        raise SourceError(f"{path}: labels need a '{id_field}' column (have {fields})")
    out = {}
    for values in rows[1:]:
        row = dict(zip(fields, values, strict=False))
        ident = (row.pop(id_field, "") or "").strip()
        if ident:
            out[ident] = _normalise_labels(row)
    return out


def _read_text(path: Path, what: str) -> str:
    """The whole of a small UTF-8 text file (labels, meta data), or a one-line error."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise SourceError(f"cannot read {what} {path}: {error.strerror or error}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise SourceError(
            f"{what} {path} is not UTF-8 text (byte 0x{data[error.start]:02x} on line {line}):"
            " save it as UTF-8"
        ) from None


def _read_csv_table(path: Path, what: str) -> list[list[str]]:
    """Every non-blank row of a small UTF-8 CSV file, or a one-line error."""
    text = _read_text(path, what)
    try:
        return [row for row in csv.reader(io.StringIO(text, newline="")) if any(row)]
    except csv.Error as error:
        raise SourceError(f"{what} {path} is not a readable CSV file: {error}") from None


class AVSpeechSource(Source):
    """AVSpeech: the official CSV plus videos named by YouTube ID, or downloaded.

    Args:
        csv: rows ``YouTubeID, start, end, face_x, face_y`` (seconds; face centre
            normalised, origin top-left), no header.
        video_dir: holds ``<id>.<ext>`` (whole videos: the segment is cut at ``start``) or
            ``<id>_<start ms>_<end ms>.<ext>`` (segments, as the downloader writes them).
        split: every row's split (``test`` for ``avspeech_test.csv``), or ``None`` to hash
            speakers (AVSpeech has no speaker IDs: the YouTube ID stands for the speaker).
        labels: optional CSV with a ``youtube_id`` column and ``speaker`` / ``gender`` /
            ``age`` / ``ethnicity`` / other columns, attached to every segment of the video.
        download: fetch segments that are not in ``video_dir`` with yt-dlp.
        keep_downloads: keep fetched segments in ``video_dir`` (``False``: delete each one
            once it is processed; at AVSpeech's scale they take terabytes).
        url_template, format, retries, rate_limit, sleep_seconds, socket_timeout, cookies,
        js_runtime, backoff_seconds: see :class:`speech2face.data.download.DownloadOptions`.
    """

    name = "avspeech"

    def __init__(
        self,
        csv: str | Path,
        video_dir: str | Path,
        split: str | None = None,
        val_fraction: float = 0.05,
        test_fraction: float = 0.0,
        labels: str | Path | None = None,
        download: bool = False,
        keep_downloads: bool = True,
        url_template: str = "https://www.youtube.com/watch?v={id}",
        format: str = "bv*[height<=720]+ba/b[height<=720]/b",
        retries: int = 3,
        rate_limit: int | None = 2_000_000,
        sleep_seconds: float = 1.0,
        socket_timeout: float = 30.0,
        cookies: str | None = None,
        js_runtime: str | None = None,
        backoff_seconds: float = 2.0,
    ) -> None:
        super().__init__(split, val_fraction, test_fraction)
        from speech2face.data.download import DownloadOptions

        self.csv = Path(csv)
        self.video_dir = Path(video_dir)
        self.labels_path = None if labels is None else Path(labels)
        self.download = bool(download)
        self.keep_downloads = bool(keep_downloads)
        if rate_limit is not None:
            _number(rate_limit, "rate_limit", 1, integer=True)
        self.download_options = DownloadOptions(
            url_template=str(url_template),
            format=str(format),
            retries=int(_number(retries, "retries", 1, integer=True)),
            rate_limit=None if rate_limit is None else int(rate_limit),
            sleep_seconds=float(_number(sleep_seconds, "sleep_seconds", 0.0)),
            socket_timeout=float(_number(socket_timeout, "socket_timeout", 0.001)),
            cookies=cookies,
            js_runtime=js_runtime,
            backoff_seconds=float(_number(backoff_seconds, "backoff_seconds", 0.0)),
        )
        _require_file(self.csv, "AVSpeech CSV")
        if self.video_dir.exists() and not self.video_dir.is_dir():
            raise SourceError(f"video_dir is not a directory: {self.video_dir}")
        if not self.video_dir.is_dir() and not self.download:
            raise SourceError(f"video_dir not found: {self.video_dir} (or pass download=true)")

    def describe(self) -> dict[str, Any]:
        return super().describe() | {"csv": str(self.csv.resolve())}

    def segments(self) -> list[Item]:
        labels = _read_labels(self.labels_path, "youtube_id")
        items: list[Item] = []
        seen: set[str] = set()
        for row_number, row, text in _csv_rows(self.csv):
            try:
                segment = self._parse(row, labels)
            except ValueError as error:
                bad_key = _bad_row_key(self.name, row_number)
                items.append(
                    BadRow(
                        bad_key,
                        self.name,
                        self.split_of(text),
                        row_number,
                        _clip_text(text),
                        str(error),
                    )
                )
                continue
            if segment.key in seen:
                bad_key = _bad_row_key(self.name, row_number)
                items.append(
                    BadRow(
                        bad_key,
                        self.name,
                        segment.split,
                        row_number,
                        _clip_text(text),
                        f"duplicate segment {segment.key}",
                    )
                )
                continue
            seen.add(segment.key)
            items.append(segment)
        return items

    def _parse(self, row: list[str], labels: dict[str, dict[str, Any]]) -> Segment:
        if len(row) != 5:
            raise ValueError(
                f"expected 5 fields (YouTubeID,start,end,face_x,face_y), got {len(row)}"
            )
        video_id = row[0].strip()
        if not YOUTUBE_ID.fullmatch(video_id):
            raise ValueError(f"invalid YouTube ID {video_id[:40]!r}")
        start, end = _finite(row[1], "start"), _finite(row[2], "end")
        face_x, face_y = _finite(row[3], "face_x"), _finite(row[4], "face_y")
        if start < 0 or end <= start:
            raise ValueError(f"bad segment times {start}..{end}")
        if not (0.0 <= face_x <= 1.0 and 0.0 <= face_y <= 1.0):
            raise ValueError(f"face centre ({face_x}, {face_y}) is outside [0, 1]")
        extra = dict(labels.get(video_id, {}))
        speaker = str(extra.pop("speaker", video_id))
        if not is_safe_key(speaker):
            speaker = sanitize(speaker)
        return Segment(
            key=f"{video_id}_{round(start * 1000):08d}",
            source=self.name,
            speaker=speaker,
            split=self.split_of(speaker),
            start=start,
            end=end,
            face_xy=(face_x, face_y),
            youtube_id=video_id,
            labels=extra,
        )

    def release(self, media: Media) -> None:
        if media.downloaded and not self.keep_downloads and media.video is not None:
            media.video.unlink(missing_ok=True)

    def segment_file_stem(self, segment: Segment) -> str:
        """File stem the downloader gives a segment: ``<id>_<start ms>_<end ms>``."""
        assert segment.youtube_id is not None and segment.end is not None
        return f"{segment.youtube_id}_{round(segment.start * 1000)}_{round(segment.end * 1000)}"

    def locate(self, segment: Segment) -> Media:
        from speech2face.data.download import Downloader, DownloadError
        from speech2face.data.media import MediaError

        video_id = segment.youtube_id
        if video_id is None or not YOUTUBE_ID.fullmatch(video_id):  # checked when parsed too
            raise MediaError("bad_row", "invalid YouTube ID")
        cut = self.segment_file_stem(segment)
        for ext in VIDEO_EXTENSIONS:
            path = self.video_dir / f"{cut}{ext}"
            if path.is_file():
                return Media(video=path, offset=0.0)
        for ext in VIDEO_EXTENSIONS:
            path = self.video_dir / f"{video_id}{ext}"
            if path.is_file():
                return Media(video=path, offset=segment.start)
        if not self.download:
            raise MediaError("missing_file", f"no video for {video_id} in video_dir")
        try:
            path = Downloader(self.download_options).fetch(
                video_id, segment.start, segment.end or segment.start, self.video_dir, cut
            )
        except DownloadError as error:
            raise MediaError("download_failed", str(error)) from None
        return Media(video=path, offset=0.0, downloaded=True)


def _csv_rows(path: Path) -> Iterator[tuple[int, list[str], str]]:
    """``(line number, fields, raw text)`` of each non-blank line of a CSV file."""
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f, start=1):
                text = line.rstrip("\r\n")
                if not text.strip():
                    continue
                try:
                    fields = next(csv.reader([text]))
                except csv.Error:
                    fields = [text]
                yield number, fields, text
    except OSError as error:
        raise SourceError(f"cannot read {path}: {error.strerror or error}") from None


# --------------------------------------------------------------------------- VoxCeleb2


class VoxCeleb2Source(Source):
    """VoxCeleb2's ``mp4/idXXXXX/<video>/<n>.mp4`` tree; the speaker ID comes from the path.

    Args:
        root: the directory holding ``mp4/`` (or the ``mp4`` directory itself).
        split: every clip's split (e.g. ``test`` for VoxCeleb2's test tree), or ``None``
            to hash speakers.
        meta: optional ``vox2_meta.csv`` (``VoxCeleb2 ID, VGGFace2 ID, Gender, Set``): adds
            gender labels.
    """

    name = "voxceleb2"

    def __init__(
        self,
        root: str | Path,
        split: str | None = None,
        val_fraction: float = 0.05,
        test_fraction: float = 0.0,
        meta: str | Path | None = None,
    ) -> None:
        super().__init__(split, val_fraction, test_fraction)
        root = Path(root)
        if (root / "mp4").is_dir():
            root = root / "mp4"
        if not root.is_dir():
            raise SourceError(f"VoxCeleb2 directory not found: {root}")
        self.root = root
        self.meta = None if meta is None else Path(meta)
        if self.meta is not None:
            _require_file(self.meta, "VoxCeleb2 meta file")

    def describe(self) -> dict[str, Any]:
        return super().describe() | {"root": str(self.root.resolve())}

    def _meta(self) -> dict[str, dict[str, Any]]:
        if self.meta is None:
            return {}
        out: dict[str, dict[str, Any]] = {}
        rows = _read_csv_table(self.meta, "VoxCeleb2 meta file")
        if not rows:
            return out
        header = [h.strip().lower() for h in rows[0]]
        try:
            id_col = next(i for i, h in enumerate(header) if h.startswith("voxceleb2"))
            gender_col = header.index("gender")
        except (StopIteration, ValueError):
            raise SourceError(
                f"{self.meta}: expected 'VoxCeleb2 ID' and 'Gender' columns"
            ) from None
        for row in rows[1:]:
            if len(row) > max(id_col, gender_col):
                gender = GENDERS.get(row[gender_col].strip().lower())
                if gender:
                    out[row[id_col].strip()] = {"gender": gender}
        return out

    def segments(self) -> list[Item]:
        meta = self._meta()
        try:
            return self._segments(meta)
        except OSError as error:
            where = error.filename or self.root
            raise SourceError(f"cannot read {where}: {error.strerror or error}") from None

    def _segments(self, meta: dict[str, dict[str, Any]]) -> list[Item]:
        items: list[Item] = []
        seen: set[str] = set()
        row = 0
        for speaker_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
            for video_dir in sorted(p for p in speaker_dir.iterdir() if p.is_dir()):
                for clip in sorted(video_dir.iterdir()):
                    if clip.suffix.lower() not in VIDEO_EXTENSIONS:
                        continue
                    row += 1
                    speaker, video, stem = speaker_dir.name, video_dir.name, clip.stem
                    relative = f"{speaker}/{video}/{clip.name}"
                    problem = None
                    if not VOXCELEB_SPEAKER.fullmatch(speaker) or not (
                        SAFE_NAME.fullmatch(video) and SAFE_NAME.fullmatch(stem)
                    ):
                        problem = "unexpected name in the mp4/idXXXXX/<video>/<n>.mp4 tree"
                    key = fit_key(f"{speaker}_{video}_{stem}")  # long names: shortened
                    if problem is None and key in seen:
                        problem = f"duplicate segment {key} (one clip in two containers?)"
                    if problem is not None:
                        items.append(
                            BadRow(
                                _bad_row_key(self.name, row),
                                self.name,
                                self.split_of(relative),
                                row,
                                _clip_text(relative),
                                problem,
                            )
                        )
                        continue
                    seen.add(key)
                    items.append(
                        Segment(
                            key=key,
                            source=self.name,
                            speaker=speaker,
                            split=self.split_of(speaker),
                            video=str(clip),
                            labels=dict(meta.get(speaker, {})),
                        )
                    )
        return items


# --------------------------------------------------------------------------- manifests


class ManifestSource(Source):
    """A CSV (with a header) or JSONL file of rows, one per segment.

    Each row names ``video``, or ``audio`` + ``image``, or ``image`` alone (face-only data
    for the decoder); optional fields: ``key``, ``start``, ``end``, ``face_x``, ``face_y``
    (normalised), ``speaker``, ``split``, ``gender``, ``age``, ``ethnicity``. Relative paths
    are relative to the manifest's directory; ``..`` components are rejected. Without a
    ``speaker``, the media file's stem stands for it.
    """

    name = "manifest"

    def __init__(
        self,
        path: str | Path,
        split: str | None = None,
        val_fraction: float = 0.05,
        test_fraction: float = 0.05,
    ) -> None:
        super().__init__(split, val_fraction, test_fraction)
        self.path = Path(path)
        _require_file(self.path, "manifest")

    def describe(self) -> dict[str, Any]:
        return super().describe() | {"path": str(self.path.resolve())}

    def _rows(self) -> Iterable[tuple[int, dict[str, Any] | None, str, str]]:
        """``(row number, fields or None, raw text, error)`` per non-blank row."""
        if self.path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
            for number, _, text in _csv_rows_raw(self.path):
                try:
                    value = json.loads(text)
                except json.JSONDecodeError as error:
                    yield number, None, text, f"not JSON ({error.msg})"
                    continue
                if not isinstance(value, dict):
                    yield number, None, text, "a JSONL row must be an object"
                    continue
                yield number, value, text, ""
            return
        # Undecodable bytes become U+FFFD: the row then fails validation as a bad row.
        try:
            with open(self.path, newline="", encoding="utf-8-sig", errors="replace") as f:
                reader = csv.reader(f)
                try:
                    header = [name.strip() for name in next(reader, [])]
                except csv.Error as error:
                    raise SourceError(f"{self.path}: unreadable CSV header ({error})") from None
                while True:
                    try:
                        values = next(reader)
                    except StopIteration:
                        return
                    except csv.Error as error:  # e.g. a field over the csv module's limit
                        yield reader.line_num, None, f"line {reader.line_num}", f"not CSV ({error})"
                        continue
                    number = reader.line_num
                    text = ",".join(values)
                    if not any(v.strip() for v in values):
                        continue
                    if len(values) > len(header):
                        yield number, None, text, "more fields than the header"
                        continue
                    yield number, dict(zip(header, values, strict=False)), text, ""
        except OSError as error:
            raise SourceError(f"cannot read {self.path}: {error.strerror or error}") from None

    def segments(self) -> list[Item]:
        items: list[Item] = []
        seen: set[str] = set()
        for number, fields, text, error in self._rows():
            bad_key = _bad_row_key(self.name, number)
            if fields is None:
                items.append(
                    BadRow(bad_key, self.name, self.split_of(text), number, _clip_text(text), error)
                )
                continue
            try:
                segment = self._parse(number, fields)
                if segment.key in seen:
                    raise ValueError(f"duplicate key {segment.key}")
            except ValueError as problem:
                items.append(
                    BadRow(
                        bad_key,
                        self.name,
                        self.split_of(text),
                        number,
                        _clip_text(text),
                        str(problem),
                    )
                )
                continue
            seen.add(segment.key)
            items.append(segment)
        return items

    def _path(self, value: Any, kind: str) -> str | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        text = str(value).strip()
        if "\x00" in text or "\n" in text:
            raise ValueError(f"{kind} path contains control characters")
        path = Path(text)
        if ".." in path.parts:
            raise ValueError(f"{kind} path must not contain '..'")
        return str(path if path.is_absolute() else self.path.parent / path)

    def _parse(self, number: int, fields: dict[str, Any]) -> Segment:
        video = self._path(fields.get("video"), "video")
        audio = self._path(fields.get("audio"), "audio")
        image = self._path(fields.get("image"), "image")
        if video is None and image is None:
            raise ValueError("a row needs 'video', 'audio' + 'image', or 'image'")
        if video is not None and (audio is not None or image is not None):
            raise ValueError("give either 'video' or 'audio'/'image', not both")
        start = 0.0
        end = None
        if fields.get("start") not in (None, ""):
            start = _finite(fields["start"], "start")
        if fields.get("end") not in (None, ""):
            end = _finite(fields["end"], "end")
        if start < 0 or (end is not None and end <= start):
            raise ValueError(f"bad segment times {start}..{end}")
        face_xy = None
        fx, fy = fields.get("face_x"), fields.get("face_y")
        if fx not in (None, "") or fy not in (None, ""):
            face_xy = (_finite(fx, "face_x"), _finite(fy, "face_y"))
            if not all(0.0 <= v <= 1.0 for v in face_xy):
                raise ValueError(f"face centre {face_xy} is outside [0, 1]")
        media_stem = Path(video or audio or image or "").stem
        key = fields.get("key")
        if key not in (None, ""):
            key = str(key).strip()
            if not is_safe_key(key):
                raise ValueError(f"key {key[:40]!r} is not [A-Za-z0-9_-]{{1,{MAX_KEY_LENGTH}}}")
        else:
            key = fit_key(f"{sanitize(media_stem)}_{number:07d}")
        speaker = fields.get("speaker")
        speaker = (
            sanitize(str(speaker).strip()) if speaker not in (None, "") else sanitize(media_stem)
        )
        split = fields.get("split")
        if split not in (None, ""):
            if split not in SPLITS:
                raise ValueError(
                    f"split must be one of {', '.join(SPLITS)}, got {str(split)[:20]!r}"
                )
        else:
            split = self.split_of(speaker)
        labels = _normalise_labels({k: fields.get(k) for k in LABEL_FIELDS if k in fields})
        return Segment(
            key=key,
            source=self.name,
            speaker=speaker,
            split=str(split),
            start=start,
            end=end,
            face_xy=face_xy,
            video=video,
            audio=audio,
            image=image,
            labels=labels,
        )


def _csv_rows_raw(path: Path) -> Iterator[tuple[int, None, str]]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f, start=1):
                text = line.strip()
                if text:
                    yield number, None, text
    except OSError as error:
        raise SourceError(f"cannot read {path}: {error.strerror or error}") from None

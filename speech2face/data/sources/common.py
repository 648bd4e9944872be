"""What every source shares: the segment and bad-row records, the split rule, and the
checks and readers for numbers, labels and small CSV files."""

from __future__ import annotations

import csv
import hashlib
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from speech2face.errors import S2FError

__all__ = [
    "SPLITS",
    "BadRow",
    "Item",
    "Media",
    "Segment",
    "Source",
    "SourceError",
    "speaker_split",
]

SPLITS = ("train", "val", "test")
MAX_ROW_TEXT = 200  # characters of a bad row kept in failures.jsonl
LABEL_FIELDS = ("gender", "age", "ethnicity")
GENDERS = {"m": "male", "male": "male", "f": "female", "female": "female"}


class SourceError(S2FError, ValueError):
    """A source that cannot be read at all (missing CSV, unreadable directory)."""


def require_file(path: Path, what: str) -> None:
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


def check_number(value: Any, name: str, minimum: float, integer: bool = False) -> float:
    """``value`` checked to be a finite number (an integer when asked) >= ``minimum``."""
    kind = int if integer else int | float
    if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value):
        what = "an integer" if integer else "a finite number"
        raise SourceError(f"{name} must be {what}, got {clip_text(repr(value))[:60]}")
    if value < minimum:
        raise SourceError(f"{name} must be >= {minimum}, got {value}")
    return value


def _check_fractions(split: str | None, val_fraction: float, test_fraction: float) -> None:
    if split is not None and split not in SPLITS:
        raise SourceError(f"split must be one of {', '.join(SPLITS)} or null, got '{split}'")
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        check_number(value, name, 0.0)
        if not 0.0 <= value <= 1.0:
            raise SourceError(f"{name} must be in [0, 1], got {value}")
    if val_fraction + test_fraction > 1.0:
        raise SourceError("val_fraction + test_fraction must not exceed 1")


def bad_row_key(source: str, row: int) -> str:
    return f"{source}-row{row:09d}"


def clip_text(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_ROW_TEXT else text[:MAX_ROW_TEXT] + "..."


def finite(text: str, name: str) -> float:
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


def normalise_labels(raw: dict[str, Any]) -> dict[str, Any]:
    labels = {k.strip(): _label_value(v) for k, v in raw.items() if k and k.strip()}
    gender = labels.get("gender")
    if isinstance(gender, str):
        labels["gender"] = GENDERS.get(gender.strip().lower(), gender.strip().lower())
    return {k: v for k, v in labels.items() if v is not None}


def read_labels(path: str | Path | None, id_field: str) -> dict[str, dict[str, Any]]:
    """Optional per-video attributes: CSV with a header naming ``id_field`` (and
    ``speaker``, ``gender``, ``age``, ``ethnicity``, ... columns)."""
    if path is None:
        return {}
    path = Path(path)
    require_file(path, "labels file")
    rows = read_csv_table(path, "labels file")
    fields = [name.strip() for name in (rows[0] if rows else [])]
    if id_field not in fields:
        raise SourceError(f"{path}: labels need a '{id_field}' column (have {fields})")
    out = {}
    for values in rows[1:]:
        row = dict(zip(fields, values, strict=False))
        ident = (row.pop(id_field, "") or "").strip()
        if ident:
            out[ident] = normalise_labels(row)
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


def read_csv_table(path: Path, what: str) -> list[list[str]]:
    """Every non-blank row of a small UTF-8 CSV file, or a one-line error."""
    text = _read_text(path, what)
    try:
        return [row for row in csv.reader(io.StringIO(text, newline="")) if any(row)]
    except csv.Error as error:
        raise SourceError(f"{what} {path} is not a readable CSV file: {error}") from None


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

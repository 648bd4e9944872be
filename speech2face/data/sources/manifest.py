"""Manifests: any data described by a CSV (with a header) or JSONL file, one row a segment."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from speech2face.data.keys import MAX_KEY_LENGTH, fit_key, is_safe_key, sanitize
from speech2face.data.sources.common import (
    LABEL_FIELDS,
    SPLITS,
    BadRow,
    Item,
    Segment,
    Source,
    SourceError,
    bad_row_key,
    clip_text,
    finite,
    normalise_labels,
    require_file,
)

__all__ = ["ManifestSource"]


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
        require_file(self.path, "manifest")

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
            bad_key = bad_row_key(self.name, number)
            if fields is None:
                items.append(
                    BadRow(bad_key, self.name, self.split_of(text), number, clip_text(text), error)
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
                        clip_text(text),
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
            start = finite(fields["start"], "start")
        if fields.get("end") not in (None, ""):
            end = finite(fields["end"], "end")
        if start < 0 or (end is not None and end <= start):
            raise ValueError(f"bad segment times {start}..{end}")
        face_xy = None
        fx, fy = fields.get("face_x"), fields.get("face_y")
        if fx not in (None, "") or fy not in (None, ""):
            face_xy = (finite(fx, "face_x"), finite(fy, "face_y"))
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
        labels = normalise_labels({k: fields.get(k) for k in LABEL_FIELDS if k in fields})
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

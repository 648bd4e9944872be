"""AVSpeech: the official CSV of YouTube segments, with videos on disk or downloaded."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from speech2face.data.download import Downloader, DownloadError, DownloadOptions
from speech2face.data.keys import VIDEO_EXTENSIONS, YOUTUBE_ID, is_safe_key, sanitize
from speech2face.data.sources.common import (
    BadRow,
    Item,
    Media,
    Segment,
    Source,
    SourceError,
    bad_row_key,
    check_number,
    clip_text,
    finite,
    read_labels,
    require_file,
)

__all__ = ["AVSpeechSource"]


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
        self.csv = Path(csv)
        self.video_dir = Path(video_dir)
        self.labels_path = None if labels is None else Path(labels)
        self.download = bool(download)
        self.keep_downloads = bool(keep_downloads)
        if rate_limit is not None:
            check_number(rate_limit, "rate_limit", 1, integer=True)
        self.download_options = DownloadOptions(
            url_template=str(url_template),
            format=str(format),
            retries=int(check_number(retries, "retries", 1, integer=True)),
            rate_limit=None if rate_limit is None else int(rate_limit),
            sleep_seconds=float(check_number(sleep_seconds, "sleep_seconds", 0.0)),
            socket_timeout=float(check_number(socket_timeout, "socket_timeout", 0.001)),
            cookies=cookies,
            js_runtime=js_runtime,
            backoff_seconds=float(check_number(backoff_seconds, "backoff_seconds", 0.0)),
        )
        require_file(self.csv, "AVSpeech CSV")
        if self.video_dir.exists() and not self.video_dir.is_dir():
            raise SourceError(f"video_dir is not a directory: {self.video_dir}")
        if not self.video_dir.is_dir() and not self.download:
            raise SourceError(f"video_dir not found: {self.video_dir} (or pass download=true)")

    def describe(self) -> dict[str, Any]:
        return super().describe() | {"csv": str(self.csv.resolve())}

    def segments(self) -> list[Item]:
        labels = read_labels(self.labels_path, "youtube_id")
        items: list[Item] = []
        seen: set[str] = set()
        for row_number, row, text in _csv_rows(self.csv):
            try:
                segment = self._parse(row, labels)
            except ValueError as error:
                bad_key = bad_row_key(self.name, row_number)
                items.append(
                    BadRow(
                        bad_key,
                        self.name,
                        self.split_of(text),
                        row_number,
                        clip_text(text),
                        str(error),
                    )
                )
                continue
            if segment.key in seen:
                bad_key = bad_row_key(self.name, row_number)
                items.append(
                    BadRow(
                        bad_key,
                        self.name,
                        segment.split,
                        row_number,
                        clip_text(text),
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
        start, end = finite(row[1], "start"), finite(row[2], "end")
        face_x, face_y = finite(row[3], "face_x"), finite(row[4], "face_y")
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

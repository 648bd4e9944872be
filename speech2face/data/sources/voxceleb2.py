"""VoxCeleb2: the ``mp4/idXXXXX/<video>/<n>.mp4`` tree, speakers named by their directory."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from speech2face.data.keys import SAFE_NAME, VIDEO_EXTENSIONS, fit_key
from speech2face.data.sources.common import (
    GENDERS,
    BadRow,
    Item,
    Segment,
    Source,
    SourceError,
    bad_row_key,
    clip_text,
    read_csv_table,
    require_file,
)

__all__ = ["VoxCeleb2Source"]

VOXCELEB_SPEAKER = re.compile(r"\Aid\d{5}\Z")


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
            require_file(self.meta, "VoxCeleb2 meta file")

    def describe(self) -> dict[str, Any]:
        return super().describe() | {"root": str(self.root.resolve())}

    def _meta(self) -> dict[str, dict[str, Any]]:
        if self.meta is None:
            return {}
        out: dict[str, dict[str, Any]] = {}
        rows = read_csv_table(self.meta, "VoxCeleb2 meta file")
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
                                bad_row_key(self.name, row),
                                self.name,
                                self.split_of(relative),
                                row,
                                clip_text(relative),
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

"""The packaged "real voices" set: held-out voices of known gender that training never uses.

``speech2face/data/real_voices/`` holds short Ogg Opus clips (16 kHz mono) from CMU Flite,
Festival and human recordings, all from Debian packages (never espeak-ng, which speaks the
training corpus), and ``manifest.csv``; its ``README.md`` names each file's source and
licence, and ``scripts/make_real_voices.py`` regenerates it.

    >>> voices = load_real_voices()
    >>> voices[0].gender in GENDERS
    True

The manifest is read strictly: a missing column, an unsafe or missing file, an unknown
gender or a duplicate row raises :class:`~speech2face.data.sources.SourceError` with a
one-line message naming the manifest, its row and the file.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from speech2face.data.sources import SourceError

__all__ = [
    "DEFAULT_ROOT",
    "GENDERS",
    "MANIFEST_COLUMNS",
    "MANIFEST_NAME",
    "RealVoice",
    "SourceError",
    "load_real_voices",
]

DEFAULT_ROOT = Path(__file__).resolve().parent / "real_voices"
MANIFEST_NAME = "manifest.csv"
MANIFEST_COLUMNS = ("file", "gender", "language", "engine", "voice", "source", "licence")
GENDERS = ("female", "male")
# A plain file name inside the set's folder: no separators, no leading dot, hence no "..".
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_MAX_SHOWN = 60  # characters of an offending value quoted in an error


@dataclass(frozen=True)
class RealVoice:
    """One clip of the set and its labels."""

    path: Path  # the audio file, inside the set's folder
    gender: str  # "female" | "male"
    language: str  # BCP 47 tag, e.g. "en-US"
    engine: str  # "flite" | "festival" | "recording"
    voice: str  # the underlying speaker; two clips of one speaker share it
    source: str  # Debian package and version the voice came from
    licence: str  # the voice data's licence (SPDX id where one exists)


def _shown(value: str) -> str:
    """``value`` quoted for a one-line message: newlines escaped, long values clipped."""
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _read_rows(manifest: Path) -> tuple[list[str], list[list[str]]]:
    """The header and data rows of ``manifest``; a one-line :class:`SourceError` when it
    cannot be read."""
    try:
        with open(manifest, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except FileNotFoundError:
        raise SourceError(f"real voices manifest not found: {manifest}") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        detail = str(getattr(error, "strerror", None) or error).splitlines()[0]
        raise SourceError(f"cannot read real voices manifest {manifest}: {detail}") from None
    if not rows:
        raise SourceError(f"real voices manifest {manifest} is empty")
    return [name.strip() for name in rows[0]], rows[1:]


def load_real_voices(root: str | Path | None = None) -> list[RealVoice]:
    """The clips listed in ``root/manifest.csv`` (default: the packaged set), in its order.

    Every row must have the :data:`MANIFEST_COLUMNS`, a plain file name (letters, digits,
    ``.``, ``_``, ``-``; not starting with a dot) of an existing file in ``root``, a gender in
    :data:`GENDERS`, and a file no other row names; otherwise :class:`SourceError`.
    """
    folder = DEFAULT_ROOT if root is None else Path(root)
    if not folder.is_dir():
        raise SourceError(f"real voices folder not found: {folder}")
    manifest = folder / MANIFEST_NAME
    header, rows = _read_rows(manifest)
    missing = [name for name in MANIFEST_COLUMNS if name not in header]
    if missing:
        raise SourceError(
            f"{manifest}: header lacks column(s) {', '.join(missing)} "
            f"(need {','.join(MANIFEST_COLUMNS)})"
        )
    index = {name: header.index(name) for name in MANIFEST_COLUMNS}
    base = folder.resolve()
    voices: list[RealVoice] = []
    seen: dict[str, int] = {}
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        if not any(cell.strip() for cell in row):
            continue  # a blank line
        where = f"{manifest} row {number}"
        if len(row) != len(header):
            raise SourceError(f"{where}: {len(row)} fields, the header has {len(header)}")
        cell = {name: row[i].strip() for name, i in index.items()}
        name = cell["file"]
        if not _FILE_NAME.fullmatch(name):
            raise SourceError(
                f"{where}: file {_shown(name)} is not a plain file name in the set's folder"
            )
        if name in seen:
            raise SourceError(f"{where}: file {name} is listed again (first on row {seen[name]})")
        seen[name] = number
        if cell["gender"] not in GENDERS:
            raise SourceError(
                f"{where}: file {name} has gender {_shown(cell['gender'])}, "
                f"not one of {', '.join(GENDERS)}"
            )
        for column in ("language", "engine", "voice", "source", "licence"):
            if not cell[column]:
                raise SourceError(f"{where}: file {name} has an empty {column}")
        path = folder / name
        if path.resolve().parent != base or not path.is_file():
            raise SourceError(f"{where}: file {name} not found in {folder}")
        voices.append(
            RealVoice(
                path=path,
                gender=cell["gender"],
                language=cell["language"],
                engine=cell["engine"],
                voice=cell["voice"],
                source=cell["source"],
                licence=cell["licence"],
            )  # fmt: skip
        )
    if not voices:
        raise SourceError(f"{manifest} lists no voices")
    return voices

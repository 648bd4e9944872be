"""Example voices for the page: the gallery of an evaluation's report.

``s2f-eval`` writes, in its output directory, ``metrics.json`` whose ``gallery`` lists
held-out samples of distinct speakers with their voice (WAV), true face, and portraits
(PNG) under ``media/gallery/`` (``docs/evaluation.md``). ``make demo`` evaluates its
held-out speakers into ``demo/eval/``, which is where ``s2f-serve`` looks by default; any
evaluation's output directory (or a demo's output directory, holding ``eval/``) can be
given with ``--gallery``. The page plays each voice, shows the true face, and draws the
portrait with the model it serves (on first view, then kept in memory).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from speech2face.errors import S2FError

__all__ = ["DEFAULT_GALLERY", "Example", "Gallery", "GalleryError", "find_gallery"]

DEFAULT_GALLERY = Path("demo")  # make demo's output_dir, relative to where s2f-serve runs
METRICS_FILE = "metrics.json"
HOW_TO = (
    "No example voices yet: 'make demo' (about 7 minutes on 2 cores) trains a model on a "
    "synthetic corpus and evaluates it on held-out speakers into demo/eval/, which "
    "s2f-serve then finds by itself; or pass --gallery EVAL_DIR (the output_dir of any "
    "s2f-eval run)."
)


class GalleryError(S2FError, ValueError):
    """A ``--gallery`` directory that holds no evaluation gallery."""


@dataclass(frozen=True)
class Example:
    index: int
    key: str
    speaker: str
    labels: dict[str, Any]  # the data set's labels (gender, age, ...)
    audio: Path
    true_face: Path

    def public(self) -> dict[str, Any]:
        """The JSON the page gets (URLs, never file paths)."""
        base = f"/api/gallery/{self.index}"
        labels = {
            k: v for k, v in self.labels.items() if isinstance(v, str | int | float) and k != "id"
        }
        return {
            "index": self.index,
            "key": self.key,
            "speaker": self.speaker,
            "labels": labels,
            "audio": f"{base}/audio.wav",
            "true_face": f"{base}/true.png",
            "portrait": f"{base}/portrait.png",
        }


@dataclass
class Gallery:
    source: Path | None = None  # the evaluation directory
    examples: list[Example] = field(default_factory=list)
    note: str = HOW_TO

    def public(self) -> dict[str, Any]:
        """The JSON the page gets: the evaluation by its name (relative to where the
        server runs when inside it), never an absolute path."""
        from speech2face.web.paths import scrub, shown

        return {
            "source": shown(self.source) if self.source is not None else None,
            "examples": [example.public() for example in self.examples],
            "note": scrub(self.note),
        }


def find_gallery(directory: str | os.PathLike | None = None) -> Gallery:
    """The gallery of ``directory`` (an evaluation's output directory, or one holding
    ``eval/``); without one, ``demo/`` under the current directory when it holds an
    evaluation, else the evaluation the demo recorded beside the default model
    (:func:`speech2face.inference.installed_gallery`), else an empty gallery whose note says
    how to make one. A ``directory`` given without a gallery raises :class:`GalleryError`."""
    if directory is None:
        found = _evaluation_dir(DEFAULT_GALLERY)
        if found is None:
            from speech2face.inference import installed_gallery

            recorded = installed_gallery()  # the demo's, recorded beside the default model
            found = _evaluation_dir(recorded) if recorded is not None else None
        if found is None:
            return Gallery()
        try:
            return _read(found)
        except GalleryError as error:
            return Gallery(note=f"{error}. {HOW_TO}")
    given = Path(directory).expanduser()
    if not given.is_dir():
        raise GalleryError(f"--gallery {given}: no such directory")
    found = _evaluation_dir(given)
    if found is None:
        raise GalleryError(
            f"--gallery {given}: no {METRICS_FILE} in it or in its eval/ (pass the output_dir "
            "of s2f-eval, or of s2f-demo)"
        )
    return _read(found)


def _evaluation_dir(root: Path) -> Path | None:
    for candidate in (root, root / "eval"):
        if (candidate / METRICS_FILE).is_file():
            return candidate
    return None


def _read(folder: Path) -> Gallery:
    folder = folder.resolve()
    try:
        metrics = json.loads((folder / METRICS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise GalleryError(f"{folder / METRICS_FILE} cannot be read: {error}") from None
    entries = metrics.get("gallery") if isinstance(metrics, dict) else None
    if not isinstance(entries, list) or not entries:
        raise GalleryError(f"{folder / METRICS_FILE} lists no gallery (s2f-eval gallery_size=0?)")
    examples = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        audio = _inside(folder, entry.get("audio"))
        true_face = _inside(folder, entry.get("true"))
        if audio is None or true_face is None:
            continue
        labels = entry.get("labels") if isinstance(entry.get("labels"), dict) else {}
        examples.append(
            Example(
                index=len(examples),
                key=str(entry.get("key", "")),
                speaker=str(entry.get("speaker", "")),
                labels=dict(labels),
                audio=audio,
                true_face=true_face,
            )
        )
    if not examples:
        raise GalleryError(f"the gallery of {folder / METRICS_FILE} has no voice with its files")
    count = len(examples)
    note = (
        f"{count} held-out voice{'s' if count != 1 else ''} of the evaluation in {folder}: "
        "speakers the model never heard in training. Each portrait is drawn from the voice "
        "by the model this page serves."
    )
    return Gallery(source=folder, examples=examples, note=note)


def _inside(folder: Path, relative: Any) -> Path | None:
    """``folder / relative`` when it is a file inside ``folder`` (no ``..``, no absolute
    path, no link out of it)."""
    if not isinstance(relative, str) or not relative or "\0" in relative:
        return None
    try:
        path = (folder / relative).resolve()
        if not path.is_relative_to(folder) or not path.is_file():
            return None
    except (OSError, ValueError):  # a name too long, a loop of links, a NUL byte
        return None
    return path

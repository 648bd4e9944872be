"""The "Real voices" benchmark of ``s2f-eval``: portraits of voices the training never heard.

A model trained on the synthetic corpus has only ever heard one speech engine. This table
asks what it does with voices of other engines and with recordings of people
(:mod:`speech2face.data.real_voices`: each file's gender is known). Two judges say whether
each portrait has the voice's gender:

- ``attributes``: the evaluation's attribute backend reads the portrait;
- ``nearest``: the true face nearest (cosine) to the predicted feature among the evaluated
  split's faces (speakers the model never heard) has the voice's gender in the data set's
  labels.

Each portrait is drawn the way ``s2f-infer`` draws it (:class:`speech2face.inference.
Portraitist`: silence left out, every window averaged). The mean face is the floor: it has
one gender for every voice, so it agrees with the share of that gender in the set.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from speech2face.errors import S2FError
from speech2face.metrics import bootstrap_ci, nearest

__all__ = ["CONTACT_SHEET", "RealVoiceError", "real_voice_table"]

FOLDER = "real_voices"  # under the report's media/
CONTACT_SHEET = "contact_sheet.png"
SHEET_COLUMNS = 8  # portraits per row of the contact sheet
SHEET_CELL = 112  # pixels per portrait on the contact sheet


class RealVoiceError(S2FError, ValueError):
    """A voice of the set that cannot be read or drawn (one line naming the file)."""


def _share(hits: list[bool], resamples: int, seed: int) -> dict[str, Any]:
    values = np.array([float(h) for h in hits])
    if len(hits) > 1:
        low, high = bootstrap_ci(values, n_resamples=resamples, seed=seed)
    else:
        low = high = None
    return {
        "value": float(values.mean()) if hits else None,
        "low": None if low is None else float(low),
        "high": None if high is None else float(high),
        "hits": int(sum(hits)),
        "total": len(hits),
    }


def real_voice_table(
    source: str | None,
    portraitist: Any,
    collected: Any,
    backend: Any,
    stage: Path,
    resamples: int,
    seed: int,
    media_dir: str = "media",
) -> dict[str, Any]:
    """Score the voices of ``source`` (``"packaged"`` or a folder with a ``manifest.csv``),
    writing their players and portraits under ``stage/media_dir/real_voices``.

    ``collected``: the evaluated split (:class:`~speech2face.evaluation.collect.Collected`),
    whose true features and dataset genders the nearest-face judge uses.
    """
    from PIL import Image

    from speech2face.data.real_voices import load_real_voices
    from speech2face.inference import InferenceError

    voices = load_real_voices(None if source in (None, "packaged") else source)
    genders = [row.get("gender") for row in collected.labels]
    nearest_ok = collected.true is not None and any(g is not None for g in genders)
    folder = stage / media_dir / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    portraits: list[tuple[str, Tensor]] = []
    features: list[Tensor] = []  # (D,) each: the predicted features, row by row
    for number, voice in enumerate(voices):
        path = Path(voice.path)
        row: dict[str, Any] = {
            "file": path.name,
            "gender": voice.gender,
            "language": voice.language,
            "engine": voice.engine,
            "voice": voice.voice,
            "source": voice.source,
            "licence": voice.licence,
        }
        audio = f"{number:03d}{path.suffix.lower()}"
        shutil.copyfile(path, folder / audio)
        row["audio"] = f"{media_dir}/{FOLDER}/{audio}"
        try:
            prediction = portraitist.predict(path)
        except (InferenceError, S2FError) as error:  # the set is curated: a bad file is fatal
            raise RealVoiceError(f"real voice set: {error}") from error
        image = f"{number:03d}_portrait.png"
        Image.fromarray(prediction.portrait.permute(1, 2, 0).numpy()).save(folder / image)
        row["portrait"] = f"{media_dir}/{FOLDER}/{image}"
        portraits.append((voice.gender, prediction.portrait))
        features.append(prediction.feature)
        rows.append(row)
    if backend is not None and portraits:  # every portrait read in one call
        said = backend.predict(torch.stack([pixels for _, pixels in portraits]))
        for row, labels in zip(rows, said, strict=True):
            row["attributes"] = labels.get("gender")
    if nearest_ok and features:  # every voice against the split's faces, in one pass
        for row, index in zip(
            rows, nearest(torch.stack(features), collected.true).tolist(), strict=True
        ):
            row["nearest"] = genders[index]
            row["nearest_key"] = collected.keys[index]
    table: dict[str, Any] = {
        "source": "packaged" if source in (None, "packaged") else str(source),
        "voices": len(rows),
        "drawn": len(rows),
        "genders": {g: sum(r["gender"] == g for r in rows) for g in ("female", "male")},
        "rows": rows,
        "judges": {},
        "notes": [],
    }
    for judge, available, reason in (
        ("attributes", backend is not None, "no attribute backend (attributes=none)"),
        ("nearest", nearest_ok, "the split's faces carry no dataset gender"),
    ):
        if not available:
            table["notes"].append(f"{judge}: {reason}")
            continue
        hits = [r[judge] == r["gender"] for r in rows if r.get(judge) is not None]
        share = _share(hits, resamples, seed)
        majority = max(table["genders"].values()) / max(len(rows), 1)
        share["one_gender_floor"] = majority
        table["judges"][judge] = share
    if portraits:
        sheet = _contact_sheet(portraits)
        sheet.save(folder / CONTACT_SHEET)
        table["contact_sheet"] = f"{media_dir}/{FOLDER}/{CONTACT_SHEET}"
    return table


def _contact_sheet(portraits: list[tuple[str, Tensor]]):
    """Female voices' portraits on the upper rows, male voices' below, :data:`SHEET_CELL`
    pixels each, a gap between the two groups."""
    from PIL import Image

    groups = [[p for g, p in portraits if g == gender] for gender in ("female", "male")]
    rows_per_group = [max(1, -(-len(group) // SHEET_COLUMNS)) for group in groups]
    gap = SHEET_CELL // 4
    height = sum(rows_per_group) * SHEET_CELL + gap
    sheet = Image.new("RGB", (SHEET_COLUMNS * SHEET_CELL, height), (255, 255, 255))
    top = 0
    for group, count in zip(groups, rows_per_group, strict=True):
        for i, pixels in enumerate(group):
            image = Image.fromarray(pixels.permute(1, 2, 0).numpy())
            image = image.resize((SHEET_CELL, SHEET_CELL), Image.Resampling.LANCZOS)
            sheet.paste(
                image, ((i % SHEET_COLUMNS) * SHEET_CELL, top + (i // SHEET_COLUMNS) * SHEET_CELL)
            )
        top += count * SHEET_CELL + gap
    return sheet

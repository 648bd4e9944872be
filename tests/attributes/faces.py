"""Labelled face images for tests: synthetic people (:mod:`speech2face.data.synthetic`)
rendered as small face crops under the UTKFace and FairFace layouts."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from speech2face.data.synthetic import SKIN_TONES, random_identity, render_face

CROP = 64  # written image side, pixels (the tiny classifier's input)
UTK_RACE_OF_TONE_GROUP = (0, 2, 1)  # tones 0-1 -> White, 2-3 -> Asian, 4-6 -> Black
FAIRFACE_RACE = ("White", "Black", "East Asian", "Indian", "Middle Eastern")  # by UTK code
FAIRFACE_AGES = ("0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69")


def face_crop(rng: np.random.Generator, index: int):
    """One synthetic person and a ``(CROP, CROP, 3)`` uint8 crop of their face."""
    person = random_identity(rng, f"p{index:05d}", f"v{index:010d}")
    yaw = float(rng.uniform(-0.4, 0.4))
    head = render_face(person, CROP * 0.62 * float(rng.uniform(0.92, 1.05)), yaw=yaw)
    background = tuple(int(c) for c in rng.integers(40, 220, 3))
    canvas = Image.new("RGB", (CROP, CROP), background)
    shift = rng.integers(-3, 4, 2)
    x = (CROP - head.width) // 2 + int(shift[0])
    y = (CROP - head.height) // 2 + int(shift[1])
    canvas.paste(head, (x, y), head)
    return person, np.asarray(canvas)


def race_code(person) -> int:
    """The UTKFace race code of a synthetic person (from their skin tone's group)."""
    group = min(SKIN_TONES.index(person.skin) // 2, 2)
    return UTK_RACE_OF_TONE_GROUP[group]


def write_utkface(directory: Path, count: int, seed: int = 0) -> list:
    """``count`` faces named ``[age]_[gender]_[race]_[date&time].jpg.chip.jpg``; returns
    the people in file order."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    people = []
    for index in range(count):
        person, crop = face_crop(rng, index)
        gender = 0 if person.gender == "male" else 1
        name = f"{person.age}_{gender}_{race_code(person)}_2017{index:013d}.jpg.chip.jpg"
        Image.fromarray(crop).save(directory / name, quality=92)
        people.append(person)
    return people


def write_fairface(root: Path, count: int, seed: int = 0, name: str = "labels.csv") -> Path:
    """``count`` faces under ``root/train/`` and a FairFace label CSV ``root/name``."""
    (root / "train").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for index in range(count):
        person, crop = face_crop(rng, index)
        file = f"train/{seed}_{index}.jpg"
        Image.fromarray(crop).save(root / file, quality=92)
        decade = min(person.age // 10 + 1, len(FAIRFACE_AGES) - 1)
        age = FAIRFACE_AGES[decade] if person.age < 70 else "more than 70"
        race = FAIRFACE_RACE[race_code(person)]
        rows.append([file, age, person.gender.capitalize(), race, "True"])
    path = root / name
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "age", "gender", "race", "service_test"])
        writer.writerows(rows)
    return path

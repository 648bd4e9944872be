"""Synthetic people: an :class:`Identity` of face and voice parameters, drawn so that gender,
age and body size shape both the face and the voice."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

__all__ = [
    "ACCENT_LANGUAGES",
    "SKIN_TONES",
    "Identity",
    "accent_of",
    "random_id",
    "random_identity",
]

ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
ID_LENGTH = 11  # like a YouTube ID

SKIN_TONES = (
    (255, 224, 196),
    (241, 194, 160),
    (224, 172, 130),
    (198, 140, 100),
    (160, 105, 70),
    (120, 78, 52),
    (92, 60, 40),
)
# Accents, one per group of SKIN_TONES (tones 0-1, 2-3, 4-6): the variety of English the
# group's speakers speak (eSpeak NG voice names).
ACCENT_LANGUAGES = ("en-us", "en-gb-x-rp", "en-029")


def accent_of(skin: tuple[int, int, int]) -> int:
    """The accent group of a skin tone (an index into ``ACCENT_LANGUAGES``)."""
    return min(SKIN_TONES.index(skin) // 2, len(ACCENT_LANGUAGES) - 1)


HAIR_COLOURS = ((20, 16, 14), (60, 40, 28), (110, 75, 45), (165, 120, 70), (200, 170, 110))
IRIS_COLOURS = ((60, 40, 25), (90, 60, 30), (50, 90, 140), (70, 110, 70))
LIP_COLOURS = ((170, 80, 80), (150, 70, 75), (190, 100, 100), (120, 60, 55))
LIPSTICK_COLOURS = ((200, 40, 60), (180, 45, 75), (215, 70, 90), (160, 35, 55))  # women's


@dataclass(frozen=True)
class Identity:
    """One synthetic person: face parameters and voice parameters.

    Face sizes are fractions of the face height; the voice is described by its median pitch
    ``f0_hz``, intonation range ``intonation`` (a fraction of ``f0_hz``), vocal-tract length
    ``vtl_cm``, speaking ``rate`` in syllables per second, ``breathiness`` and
    ``roughness`` (0..1), its accent and the engine's synthesiser ``klatt`` (0: its own).
    """

    speaker: str
    video_id: str
    gender: str  # "male" or "female"
    age: int  # years
    head_scale: float  # face height relative to the mean head (1.0)
    face_ratio: float  # width / height of the face oval
    jaw: float  # jaw width relative to the face width
    skin: tuple[int, int, int]
    hair_colour: tuple[int, int, int]
    hair_style: str  # "short", "long" or "bald"
    iris: tuple[int, int, int]
    lips: tuple[int, int, int]
    eye_spacing: float  # half the distance between the eye centres
    eye_size: float
    brow: float  # brow thickness
    nose_width: float
    nose_length: float
    mouth_width: float
    beard: bool
    f0_hz: float
    vtl_cm: float
    rate: float  # syllables per second
    breathiness: float  # aspiration noise level relative to the voiced source
    accent: int = 1  # index into ACCENT_LANGUAGES (accent_of(skin) for drawn people)
    intonation: float = 0.5  # pitch range of the intonation, a fraction of f0_hz
    roughness: float = 0.1  # irregular voicing, 0..1
    klatt: int = 0  # the speech engine's synthesiser: 0 its own, 3-5 its Klatt variants


def random_id(rng: np.random.Generator) -> str:
    """An 11-character YouTube-like ID (letters, digits, '-' and '_')."""
    return "".join(ID_ALPHABET[i] for i in rng.integers(0, len(ID_ALPHABET), ID_LENGTH))


def random_identity(rng: np.random.Generator, speaker: str, video_id: str) -> Identity:
    """Draw a person whose voice and face depend on the same gender, age and head size."""
    male = bool(rng.random() < 0.5)
    age = int(rng.integers(18, 75))
    # Vocal-tract length and head size move together (one body-size factor).
    size = float(np.clip(rng.normal(0.0, 1.0), -2.0, 2.0))
    vtl = (17.0 if male else 14.8) + 0.6 * size
    head_scale = (1.06 if male else 0.96) + 0.05 * size
    f0 = (118.0 if male else 205.0) + (16 if male else 22) * float(rng.normal())
    f0 += (0.25 if male else -0.35) * max(0, age - 40)  # voices age
    f0 = float(np.clip(f0, 78.0, 290.0))
    rate = float(np.clip(rng.normal(4.6, 0.5) - 0.012 * max(0, age - 30), 2.8, 6.0))
    hair = HAIR_COLOURS[int(rng.integers(len(HAIR_COLOURS)))]
    if age > 55:  # grey with age
        hair = tuple(int(c + (185 - c) * min(1.0, (age - 50) / 25)) for c in hair)
    if male:
        style = ("short", "short", "short", "bald")[int(rng.integers(4))] if age > 45 else "short"
    else:
        style = ("long", "long", "short")[int(rng.integers(3))]
    person = Identity(
        speaker=speaker,
        video_id=video_id,
        gender="male" if male else "female",
        age=age,
        head_scale=round(head_scale, 4),
        face_ratio=round(float(rng.uniform(0.70, 0.80) if male else rng.uniform(0.66, 0.75)), 4),
        jaw=round(float(rng.uniform(0.78, 0.92) if male else rng.uniform(0.60, 0.74)), 4),
        skin=SKIN_TONES[int(rng.integers(len(SKIN_TONES)))],
        hair_colour=tuple(int(c) for c in hair),
        hair_style=style,
        iris=IRIS_COLOURS[int(rng.integers(len(IRIS_COLOURS)))],
        lips=(LIP_COLOURS if male else LIPSTICK_COLOURS)[int(rng.integers(len(LIP_COLOURS)))],
        eye_spacing=round(float(rng.uniform(0.16, 0.21)), 4),
        eye_size=round(float(rng.uniform(0.085, 0.11)), 4),
        brow=round(float(rng.uniform(0.025, 0.04) if male else rng.uniform(0.012, 0.022)), 4),
        nose_width=round(float(rng.uniform(0.13, 0.21)), 4),
        nose_length=round(float(rng.uniform(0.17, 0.24)), 4),
        mouth_width=round(float(rng.uniform(0.26, 0.36)), 4),
        beard=bool(male and rng.random() < 0.55),
        f0_hz=round(f0, 2),
        vtl_cm=round(vtl, 3),
        rate=round(rate, 3),
        breathiness=round(float(rng.uniform(0.02, 0.08) if male else rng.uniform(0.05, 0.14)), 4),
    )
    # The voice's own character, drawn after the face so that faces stay as they were.
    return replace(
        person,
        accent=accent_of(person.skin),
        intonation=round(float(rng.uniform(0.25, 0.7)), 4),
        roughness=round(float(np.clip(rng.uniform(0.0, 0.3) + 0.01 * max(0, age - 45), 0, 1)), 4),
        klatt=int(rng.choice((0, 0, 0, 3, 4, 5))),
    )

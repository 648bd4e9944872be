"""A synthetic talking-face corpus, generated offline and deterministically from a seed.

Each speaker is an :class:`Identity`: a face rendered with PIL from parameters (face shape,
skin tone, hair, eye spacing, nose and mouth size) and a voice: real sentences (public-domain
texts, :func:`speech2face.data.speech.load_sentences`) spoken by the eSpeak NG speech engine
(:mod:`speech2face.data.speech`) with a variant of its own per speaker (pitch and intonation
range, vocal-tract length as a scale of the formants, breathiness, roughness, speaking rate,
the engine's default or Klatt synthesiser). Voice and face share causes, so a voice carries
information about the face:

- gender sets the pitch range (male ~118 Hz, female ~205 Hz), the vocal-tract length
  (~17 cm vs ~14.8 cm), the jaw width, the brows, hair length, lip colour and beards;
- head size scales with the vocal-tract length (a larger head, lower formants);
- age lowers male / raises female pitch slightly, slows speech, roughens the voice and greys
  the hair;
- an accent follows the skin tone's group (like language and ethnicity in real speech):
  each group speaks another variety of English (:data:`ACCENT_LANGUAGES`).

Every video then passes through a recording channel of its own
(:class:`speech2face.augment.RecordingChannel`: room, background noise, band limits, level,
coarse quantisation) and an AAC encoder at a bit rate of its own.

:func:`make_corpus` writes one mp4 per speaker (H.264 video + AAC audio through PyAV) that
holds ``clips_per_speaker`` talking segments, an AVSpeech-style CSV (``YouTubeID, start,
end, face_x, face_y``, no header) and the speakers' attributes. The mouth opens with the
voice's loudness, the eyes blink, the head turns a little; some segments show a second,
smaller face, so the detection nearest the CSV's face centre must be picked.
"""

from __future__ import annotations

import csv
import itertools
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from speech2face.data.speech import (
    DEFAULT_WPM,
    ENGINE_RATE,
    VoiceSpec,
    engine,
    load_sentences,
)

__all__ = [
    "ACCENT_LANGUAGES",
    "AUDIO_RATE",
    "FPS",
    "VIDEO_SIZE",
    "accent_of",
    "Identity",
    "make_corpus",
    "random_identity",
    "render_face",
    "render_frame",
    "synthesize_voice",
    "voice_of",
]

VIDEO_SIZE = 256  # square frames, pixels
FPS = 10  # video frame rate (make_corpus's default)
AUDIO_RATE = 24_000  # AAC track rate (the pipeline resamples to 16 kHz)
SEGMENT_SECONDS = (3.5, 5.0)  # each talking segment's length is drawn from this range
GAP_SECONDS = 0.8  # silence (and no labelled segment) between segments
LEAD_SECONDS = 0.5  # before the first segment
ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
ID_LENGTH = 11  # like a YouTube ID
SUPERSAMPLE = 2  # faces are drawn at 2x and downsampled (anti-aliasing)

NEUTRAL_VTL_CM = 17.5  # vocal-tract length of the speech engine's default (adult male) voice
CONTROL_RATE = 200  # Hz: the loudness envelope that drives the mouth
PHRASE_PAUSE_SECONDS = (0.15, 0.45)  # silence between two sentences of a segment
VOICE_LEAD_SECONDS = (0.05, 0.2)  # silence before the first word of a segment
VOICE_PEAK = 0.7  # a segment's peak level before the recording channel
BREATH_GAIN = 4.0  # aspiration noise per unit of breathiness, against the speech's RMS
MEAN_RATE = 4.6  # syllables per second of the engine's default speaking rate
AAC_BIT_RATES = (32_000, 48_000, 64_000, 96_000)  # each video's audio bit rate is one of these

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


# --------------------------------------------------------------------------- faces


def render_face(
    identity: Identity,
    height: float,
    yaw: float = 0.0,
    mouth_open: float = 0.0,
    blink: bool = False,
) -> Image.Image:
    """The identity's head as an RGBA image (transparent background).

    Args:
        height: face-oval height in pixels; the image is ``2 * height`` square, head centred.
        yaw: -1..1, how far the head turns (inner features slide sideways).
        mouth_open: 0..1, how far the mouth opens.
        blink: draw closed eyes.
    """
    s = SUPERSAMPLE
    h = height * s
    side = int(round(2 * h))
    img = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    cx, cy = side / 2, side / 2
    w = h * identity.face_ratio
    top, bottom = cy - h / 2, cy + h / 2
    skin = identity.skin
    shade = tuple(int(c * 0.82) for c in skin)
    hair = identity.hair_colour

    if identity.hair_style == "long":  # hair falling behind the head
        d.rounded_rectangle(
            (cx - w * 0.62, top - h * 0.08, cx + w * 0.62, bottom + h * 0.12),
            radius=w * 0.5,
            fill=hair,
        )
    # neck, ears, face oval, jaw
    d.rectangle((cx - w * 0.22, cy + h * 0.3, cx + w * 0.22, cy + h * 0.75), fill=shade)
    for side_sign in (-1, 1):
        ex = cx + side_sign * w * 0.5
        d.ellipse((ex - w * 0.08, cy - h * 0.1, ex + w * 0.08, cy + h * 0.1), fill=shade)
    d.ellipse((cx - w / 2, top, cx + w / 2, cy + h * 0.25), fill=skin)
    jaw = w / 2 * identity.jaw
    d.polygon(
        [
            (cx - w / 2, cy - h * 0.02),
            (cx + w / 2, cy - h * 0.02),
            (cx + jaw, cy + h * 0.33),
            (cx + w * 0.16, bottom),
            (cx - w * 0.16, bottom),
            (cx - jaw, cy + h * 0.33),
        ],
        fill=skin,
    )
    if identity.beard:
        beard = tuple(int(0.55 * c + 0.45 * s_) for c, s_ in zip(hair, skin, strict=True))
        d.polygon(
            [
                (cx - w * 0.47, cy + h * 0.05),
                (cx - jaw * 0.95, cy + h * 0.34),
                (cx - w * 0.15, bottom),
                (cx + w * 0.15, bottom),
                (cx + jaw * 0.95, cy + h * 0.34),
                (cx + w * 0.47, cy + h * 0.05),
                (cx + w * 0.3, cy + h * 0.28),
                (cx - w * 0.3, cy + h * 0.28),
            ],
            fill=beard,
        )
    # hair on top of the head
    if identity.hair_style != "bald":
        d.chord((cx - w * 0.54, top - h * 0.06, cx + w * 0.54, cy + h * 0.02), 180, 360, fill=hair)
        d.pieslice((cx - w * 0.5, top - h * 0.02, cx + w * 0.3, cy - h * 0.12), 180, 300, fill=hair)

    # inner features slide with the head's yaw; the far eye narrows
    shift = yaw * w * 0.18
    ey = cy - h * 0.07
    ew, eh = h * identity.eye_size, h * identity.eye_size * 0.5
    socket = tuple(int(c * 0.72) for c in skin)
    brow_colour = tuple(int(min(a, b * 0.45)) for a, b in zip(hair, skin, strict=True))
    for side_sign in (-1, 1):
        ex = cx + shift + side_sign * h * identity.eye_spacing
        squeeze = 1.0 - 0.35 * max(0.0, side_sign * yaw)
        ewx = ew * squeeze
        d.ellipse((ex - ewx * 1.4, ey - eh * 2.2, ex + ewx * 1.4, ey + eh * 1.6), fill=socket)
        by = ey - eh - h * 0.05
        d.line(
            (ex - ewx * 1.1, by + h * 0.01, ex + ewx * 1.1, by - h * 0.005 * side_sign),
            fill=brow_colour,
            width=max(2, int(h * identity.brow)),
        )
        if blink:
            d.line((ex - ewx, ey, ex + ewx, ey), fill=(40, 25, 20), width=max(1, int(h * 0.015)))
            continue
        d.ellipse((ex - ewx, ey - eh, ex + ewx, ey + eh), fill=(248, 248, 245))
        ir = eh * 0.95
        ix = ex + yaw * ewx * 0.3
        d.ellipse((ix - ir, ey - ir, ix + ir, ey + ir), fill=identity.iris)
        d.ellipse(
            (ix - ir * 0.45, ey - ir * 0.45, ix + ir * 0.45, ey + ir * 0.45), fill=(15, 10, 10)
        )
        d.ellipse((ex - ewx, ey - eh, ex + ewx, ey + eh), outline=(40, 28, 25), width=max(1, s))
    # nose: a lit bridge, shaded sides, dark nostrils
    nx = cx + yaw * w * 0.26
    nw, nl = h * identity.nose_width / 2, h * identity.nose_length
    ny0 = ey + eh * 0.3
    light = tuple(min(255, int(c * 1.18 + 12)) for c in skin)
    d.polygon([(nx, ny0), (nx - nw, ny0 + nl), (nx + nw, ny0 + nl)], fill=shade)
    d.polygon(
        [(nx, ny0), (nx - nw * 0.3, ny0 + nl * 0.9), (nx + nw * 0.3, ny0 + nl * 0.9)], fill=light
    )
    d.ellipse(
        (nx - nw * 1.05, ny0 + nl - nw * 0.25, nx + nw * 1.05, ny0 + nl + nw * 0.3), fill=socket
    )
    for side_sign in (-1, 1):
        px = nx + side_sign * nw * 0.45
        d.ellipse(
            (px - nw * 0.22, ny0 + nl - nw * 0.15, px + nw * 0.22, ny0 + nl + nw * 0.12),
            fill=(35, 20, 18),
        )
    # mouth: lips, opening with the voice
    mx = cx + yaw * w * 0.2
    my = ny0 + nl + h * 0.1
    mw = h * identity.mouth_width / 2 * (1.0 - 0.15 * abs(yaw))
    lip = h * 0.035
    lips = tuple(
        int(0.5 * a + 0.5 * b * f)
        for a, b, f in zip(identity.lips, skin, (0.9, 0.55, 0.55), strict=True)
    )
    opening = lip * 0.2 + mouth_open * h * 0.07
    d.ellipse((mx - mw, my - lip - opening / 2, mx + mw, my + lip + opening / 2), fill=lips)
    d.ellipse(
        (mx - mw * 0.75, my - opening / 2, mx + mw * 0.75, my + opening / 2), fill=(45, 15, 20)
    )
    # soft light from the front: brighter centre, darker rim
    rgba = np.asarray(img).astype(np.float32)
    yy, xx = np.mgrid[0:side, 0:side]
    r2 = ((xx - cx - shift) / (w * 0.6)) ** 2 + ((yy - cy) / (h * 0.6)) ** 2
    rgba[..., :3] *= np.clip(1.12 - 0.3 * r2, 0.6, 1.12)[..., None]
    img = Image.fromarray(np.clip(rgba, 0, 255).astype(np.uint8), "RGBA")
    if s > 1:
        img = img.resize((side // s, side // s), Image.Resampling.LANCZOS)
    return img


def _background(rng: np.random.Generator, size: int) -> Image.Image:
    """A smooth two-colour gradient with a few soft blobs: a plausible room."""
    c0, c1 = rng.integers(40, 220, 3), rng.integers(40, 220, 3)
    t = np.linspace(0.0, 1.0, size)[:, None, None]
    grad = (c0[None, None, :] * (1 - t) + c1[None, None, :] * t) * np.ones((1, size, 1))
    img = Image.fromarray(grad.astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    for _ in range(4):
        x, y = rng.integers(0, size, 2)
        r = int(rng.integers(size // 10, size // 4))
        d.rectangle(
            (x - r, y - r, x + r, y + r // 2), fill=tuple(int(v) for v in rng.integers(30, 230, 3))
        )
    return img.filter(ImageFilter.GaussianBlur(size / 40))


def render_frame(
    background: Image.Image,
    faces: list[tuple[Identity, float, float, float, float, float, bool]],
) -> np.ndarray:
    """Composite faces onto a copy of ``background``.

    ``faces``: ``(identity, centre_x, centre_y, height, yaw, mouth_open, blink)`` in pixels.
    Returns ``(H, W, 3)`` uint8 RGB.
    """
    frame = background.copy()
    for identity, x, y, height, yaw, mouth, blink in faces:
        head = render_face(identity, height, yaw=yaw, mouth_open=mouth, blink=blink)
        frame.paste(head, (int(round(x - head.width / 2)), int(round(y - head.height / 2))), head)
    return np.asarray(frame)


# --------------------------------------------------------------------------- voices


def voice_of(identity: Identity) -> VoiceSpec:
    """The speech engine's voice for ``identity``."""
    return VoiceSpec(
        language=ACCENT_LANGUAGES[identity.accent],
        pitch_hz=identity.f0_hz,
        pitch_range_hz=identity.f0_hz * identity.intonation,
        formant_scale=NEUTRAL_VTL_CM / identity.vtl_cm,
        roughness=identity.roughness,
        words_per_minute=int(round(DEFAULT_WPM * identity.rate / MEAN_RATE)),
        klatt=identity.klatt,
    )


def synthesize_voice(
    identity: Identity,
    seconds: float,
    rng: np.random.Generator,
    rate: int = AUDIO_RATE,
    sentences: list[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``identity`` reading sentences for ``seconds``: ``((T,), (C,))`` waveform and loudness.

    Sentences are drawn from ``sentences`` (default: :func:`load_sentences`) without
    repeats within the segment and spoken one after another with short pauses; the last
    is cut off at the segment's end, as a segment of a longer talk is. The envelope is
    sampled at ``CONTROL_RATE`` Hz (0..1) and drives the mouth.
    """
    from scipy.signal import resample_poly

    sentences = sentences if sentences is not None else load_sentences()
    speech = engine()
    voice = voice_of(identity)
    target = int(math.ceil(seconds * ENGINE_RATE))
    parts = [np.zeros(int(rng.uniform(*VOICE_LEAD_SECONDS) * ENGINE_RATE), np.float32)]
    length = parts[0].size
    order = rng.permutation(len(sentences))
    for index in itertools.cycle(order):
        spoken = speech.say(sentences[int(index)], voice)
        parts.append(spoken)
        pause = np.zeros(int(rng.uniform(*PHRASE_PAUSE_SECONDS) * ENGINE_RATE), np.float32)
        parts.append(pause)
        length += spoken.size + pause.size
        if length >= target:
            break
    wav = np.concatenate(parts)[:target].astype(np.float64)
    divisor = math.gcd(int(rate), ENGINE_RATE)
    wav = resample_poly(wav, int(rate) // divisor, ENGINE_RATE // divisor)
    wav = wav[: int(round(seconds * rate))]
    wav *= VOICE_PEAK / (np.max(np.abs(wav)) + 1e-9)
    # loudness at the control rate: the RMS of each 1/CONTROL_RATE s
    hop = max(1, int(rate) // CONTROL_RATE)
    n_ctrl = int(math.ceil(seconds * CONTROL_RATE))
    padded = np.zeros(n_ctrl * hop)
    padded[: min(wav.size, padded.size)] = wav[: padded.size]
    rms = np.sqrt((padded.reshape(n_ctrl, hop) ** 2).mean(axis=1))
    # breathiness: aspiration, high-passed noise that follows the loudness of the speech
    t_ctrl = (np.arange(n_ctrl) + 0.5) * hop
    loudness = np.interp(np.arange(wav.size), t_ctrl, rms)
    noise = np.diff(rng.standard_normal(wav.size + 1)) * 0.5
    wav = wav + BREATH_GAIN * identity.breathiness * loudness * noise
    wav *= VOICE_PEAK / (np.max(np.abs(wav)) + 1e-9)
    # the mouth opens fully on loud syllables: the envelope is scaled to its 95th percentile
    envelope = np.clip(rms / (np.percentile(rms, 95) + 1e-9), 0.0, 1.0)
    return wav.astype(np.float32), envelope


def record(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:  # (T,) -> (T,)
    """One video's sound track through a recording channel drawn from ``rng`` (a room,
    noise, band limits, a level, sometimes coarse quantisation): ``(T,)`` float32 at
    :data:`AUDIO_RATE`."""
    import torch

    from speech2face.augment import RecordingChannel

    channel = RecordingChannel(gain_db=(-12.0, 3.0), sample_rate=AUDIO_RATE)
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    with torch.inference_mode():
        out = channel(torch.from_numpy(np.asarray(audio, np.float32))[None], generator)
    return out[0].numpy().astype(np.float32)


# --------------------------------------------------------------------------- corpus


@dataclass(frozen=True)
class _Segment:
    start: float
    end: float
    x: float  # face centre at the segment's start, pixels
    y: float
    height: float  # face height, pixels
    distractor: bool


def _plan_segments(identity: Identity, rng: np.random.Generator, count: int) -> list[_Segment]:
    segments = []
    t = LEAD_SECONDS
    for _ in range(count):
        dur = round(float(rng.uniform(*SEGMENT_SECONDS)), 2)
        height = VIDEO_SIZE * float(rng.uniform(0.36, 0.46)) * identity.head_scale
        margin = height * 0.8
        x = float(rng.uniform(margin, VIDEO_SIZE - margin))
        y = float(rng.uniform(margin * 0.9, VIDEO_SIZE - margin * 0.9))
        segments.append(_Segment(round(t, 2), round(t + dur, 2), x, y, height, rng.random() < 0.3))
        t += dur + GAP_SECONDS
    return segments


def _write_video(
    path: Path,
    identity: Identity,
    other: Identity,
    segments: list[_Segment],
    rng: np.random.Generator,
    fps: int = FPS,
    sentences: list[str] | None = None,
) -> None:
    """Render and encode the speaker's whole video: H.264 + AAC, one talking face."""
    import av

    total = segments[-1].end + GAP_SECONDS / 2
    audio = np.zeros(int(round(total * AUDIO_RATE)), dtype=np.float32)
    audio += (0.001 * rng.standard_normal(audio.size)).astype(np.float32)
    env = np.zeros(int(math.ceil(total * CONTROL_RATE)) + 1)
    sentences = sentences if sentences is not None else load_sentences()
    for seg in segments:
        wav, seg_env = synthesize_voice(identity, seg.end - seg.start, rng, sentences=sentences)
        a0 = int(round(seg.start * AUDIO_RATE))
        audio[a0 : a0 + wav.size] += wav[: audio.size - a0]
        c0 = int(round(seg.start * CONTROL_RATE))
        env[c0 : c0 + seg_env.size] = seg_env[: env.size - c0]
    audio = record(audio, rng)
    bit_rate = int(rng.choice(AAC_BIT_RATES))

    n_frames = int(math.ceil(total * fps))
    blink_frames = set(
        int(i) for i in rng.choice(n_frames, size=max(1, n_frames // 25), replace=False)
    )
    with av.open(str(path), "w") as container:
        vstream = container.add_stream(
            "libx264", rate=fps, options={"crf": "28", "preset": "veryfast"}
        )
        vstream.width = vstream.height = VIDEO_SIZE
        vstream.pix_fmt = "yuv420p"
        vstream.codec_context.thread_count = 1
        astream = container.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        astream.bit_rate = bit_rate
        seg_index = 0
        background = _background(rng, VIDEO_SIZE)
        for i in range(n_frames):
            t = i / fps
            while seg_index + 1 < len(segments) and t >= segments[seg_index].end + GAP_SECONDS / 2:
                seg_index += 1
                background = _background(rng, VIDEO_SIZE)
            seg = segments[seg_index]
            # the head sways slowly around its position at the segment start
            dt = max(0.0, t - seg.start)
            x = seg.x + 4.0 * math.sin(1.3 * dt + seg_index)
            y = seg.y + 3.0 * math.sin(0.9 * dt + 2 * seg_index)
            yaw = 0.55 * math.sin(0.8 * dt + 1.7 * seg_index) + 0.08 * float(rng.normal())
            mouth = float(env[min(env.size - 1, int(t * CONTROL_RATE))])
            faces = [(identity, x, y, seg.height, yaw, mouth, i in blink_frames)]
            if seg.distractor:  # someone smaller in the background, away from the speaker
                ox = VIDEO_SIZE * (0.18 if seg.x > VIDEO_SIZE / 2 else 0.82)
                faces.insert(0, (other, ox, VIDEO_SIZE * 0.25, seg.height * 0.55, 0.0, 0.0, False))
            frame = av.VideoFrame.from_ndarray(render_frame(background, faces), format="rgb24")
            frame.pts = i
            container.mux(vstream.encode(frame))
        container.mux(vstream.encode(None))
        block = 1024
        for start in range(0, audio.size, block):
            chunk = audio[None, start : start + block]
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(chunk), format="fltp", layout="mono"
            )
            frame.sample_rate = AUDIO_RATE
            frame.pts = start
            container.mux(astream.encode(frame))
        container.mux(astream.encode(None))


def make_corpus(
    out_dir: str | Path,
    num_speakers: int = 16,
    clips_per_speaker: int = 2,
    seed: int = 0,
    workers: int = 1,
    fps: int = FPS,
    sentences: str | Path | None = None,
) -> Path:
    """Write a small AVSpeech-like corpus; returns the path of its ``clips.csv``.

    Layout: ``out_dir/videos/<id>.mp4`` (one video per speaker, 256x256 at ``fps``, AAC
    audio at 24 kHz, ``clips_per_speaker`` talking segments of 3.5-5 s separated by
    0.8 s gaps), ``out_dir/clips.csv`` (``id,start,end,face_x,face_y``, no header, one row
    per segment, face centre normalised to the frame) and ``out_dir/labels.csv`` (one row
    per speaker with a header: ``youtube_id, speaker, gender, age`` and every other
    :class:`Identity` field). The same arguments give the same files, whatever
    ``workers`` (processes that render and encode the videos, about 1.7 s of CPU per
    segment each at 10 fps; drawing the frames is most of it, so ``fps=5`` halves it and
    leaves the voices as they are). ``sentences``: a text file of sentences the speakers
    say, one a line (default: the packaged public-domain list); the speech engine and the
    list are checked before any video is written (:class:`SpeechEngineError`).
    """
    if fps < 1:
        raise ValueError(f"make_corpus needs at least one frame per second, got {fps}")
    if num_speakers < 1 or clips_per_speaker < 1:
        raise ValueError("make_corpus needs at least one speaker and one clip per speaker")
    if workers < 1:
        raise ValueError(f"make_corpus needs at least one worker, got {workers}")
    lines = load_sentences(sentences)  # a missing or empty list fails here, in one line
    engine()  # and so does a missing speech engine
    out = Path(out_dir)
    videos = out / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ids: list[str] = []
    while len(ids) < num_speakers:
        vid = random_id(rng)
        if vid not in ids:
            ids.append(vid)
    people = [random_identity(rng, f"spk{i:04d}", vid) for i, vid in enumerate(ids)]
    jobs = [
        (videos, person, people[(i + 1) % len(people)], [seed, i], clips_per_speaker, fps, lines)
        for i, person in enumerate(people)
    ]
    if workers == 1:
        planned = [_speaker_video(*job) for job in jobs]
    else:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(min(workers, len(jobs))) as pool:
            planned = pool.starmap(_speaker_video, jobs, chunksize=1)
    rows = []
    for person, segments in zip(people, planned, strict=True):
        for seg in segments:
            rows.append(
                (
                    person.video_id,
                    f"{seg.start:.6f}",
                    f"{seg.end:.6f}",
                    f"{seg.x / VIDEO_SIZE:.6f}",
                    f"{seg.y / VIDEO_SIZE:.6f}",
                )
            )
    clips = out / "clips.csv"
    with open(clips, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    fields = list(asdict(people[0]))
    with open(out / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        header = ["youtube_id", *[k for k in fields if k != "video_id"]]
        writer.writerow(header)
        for person in people:
            values = asdict(person)
            writer.writerow(
                [person.video_id] + [_csv_value(values[k]) for k in fields if k != "video_id"]
            )
    return clips


def _speaker_video(
    videos: Path,
    person: Identity,
    other: Identity,
    seed: list[int],
    clips: int,
    fps: int,
    sentences: list[str],
) -> list[_Segment]:
    """Plan one speaker's segments and write their video (``other`` is the second face)."""
    rng = np.random.default_rng(seed)
    segments = _plan_segments(person, rng, clips)
    _write_video(videos / f"{person.video_id}.mp4", person, other, segments, rng, fps, sentences)
    return segments


def _csv_value(value: object) -> str:
    if isinstance(value, tuple):
        return "#" + "".join(f"{int(v):02x}" for v in value)  # colours as hex
    return str(value)

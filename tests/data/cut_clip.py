"""A talking-face clip with a cut: the speaker stands at the hint, then someone else does.

Before the cut the speaker is alone at :data:`LEFT` (where the AVSpeech-style face centre
puts them), turned away; after it a bystander stands at :data:`LEFT`, larger and facing the
camera, while the speaker has moved to :data:`RIGHT` and turned almost frontal. A picker that
trusts the start-time face centre in every frame crops the bystander; following the speaker
by identity crops the speaker, after the cut, at :data:`RIGHT`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speech2face.data.synthetic import (
    AUDIO_RATE,
    FPS,
    VIDEO_SIZE,
    Identity,
    random_identity,
    render_frame,
    synthesize_voice,
)

LEFT = (0.28, 0.5)  # normalised face centres
RIGHT = (0.72, 0.5)
SPEAKER_HEIGHT = 0.36 * VIDEO_SIZE  # face-oval heights, pixels
BYSTANDER_HEIGHT = 0.42 * VIDEO_SIZE  # larger than the speaker
SPEAKER_YAW = (0.55, 0.12)  # before and after the cut: the speaker is more frontal after it
BYSTANDER_YAW = 0.0  # the most frontal face of the clip
SECONDS = 4.0
CUT_SECONDS = 1.2


@dataclass(frozen=True)
class CutClip:
    path: Path
    speaker: Identity
    bystander: Identity
    hint: tuple[float, float]  # the speaker's face centre at the start, normalised
    cut: float  # seconds

    def csv_row(self) -> str:
        """The clip as an AVSpeech CSV row (``id, start, end, face_x, face_y``)."""
        return f"{self.path.stem},0.000000,{SECONDS:.6f},{self.hint[0]:.6f},{self.hint[1]:.6f}"


def _background(colour: tuple[int, int, int], size: int = VIDEO_SIZE):
    from PIL import Image

    t = np.linspace(0.7, 1.0, size)[:, None, None]
    pixels = (np.asarray(colour, dtype=np.float64)[None, None, :] * t) * np.ones((1, size, 1))
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


def _at(point: tuple[float, float]) -> tuple[float, float]:
    return point[0] * VIDEO_SIZE, point[1] * VIDEO_SIZE


def people(seed: int) -> tuple[Identity, Identity]:
    """Two different synthetic people of one gender (the harder case for identity)."""
    rng = np.random.default_rng(seed)
    speaker = random_identity(rng, "spk", "speaker")
    while True:
        bystander = random_identity(rng, "other", "bystander")
        if bystander.gender == speaker.gender:
            return speaker, bystander


def write_cut_clip(path: Path, seed: int = 0, empty_frames: int = 0) -> CutClip:
    """Write the clip (256x256 H.264 at 10 fps, AAC voice) to ``path``; see the module.

    The first ``empty_frames`` frames show the background only (a face the detector misses
    at the segment's start).
    """
    import av

    speaker, bystander = people(seed)
    rng = np.random.default_rng(seed)
    wav, _ = synthesize_voice(speaker, SECONDS + 0.3, rng)  # audio past the segment's end
    before, after = _background((150, 170, 200)), _background((200, 180, 140))
    size = VIDEO_SIZE
    with av.open(str(path), "w") as container:
        vstream = container.add_stream("libx264", rate=FPS, options={"crf": "23"})
        vstream.width = vstream.height = size
        vstream.pix_fmt = "yuv420p"
        vstream.codec_context.thread_count = 1
        astream = container.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        for i in range(int(SECONDS * FPS) + 2):
            t = i / FPS
            mouth = 0.5 + 0.5 * np.sin(9.0 * t)
            if i < empty_frames:
                image = np.asarray(before)
            elif t < CUT_SECONDS:
                faces = [(speaker, *_at(LEFT), SPEAKER_HEIGHT, SPEAKER_YAW[0], mouth, False)]
                image = render_frame(before, faces)
            else:
                faces = [
                    (bystander, *_at(LEFT), BYSTANDER_HEIGHT, BYSTANDER_YAW, 0.0, False),
                    (speaker, *_at(RIGHT), SPEAKER_HEIGHT, SPEAKER_YAW[1], mouth, False),
                ]
                image = render_frame(after, faces)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            container.mux(vstream.encode(frame))
        container.mux(vstream.encode(None))
        block = 1024
        for start in range(0, wav.size, block):
            chunk = np.ascontiguousarray(wav[None, start : start + block])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            frame.sample_rate = AUDIO_RATE
            frame.pts = start
            container.mux(astream.encode(frame))
        container.mux(astream.encode(None))
    return CutClip(path, speaker, bystander, LEFT, CUT_SECONDS)

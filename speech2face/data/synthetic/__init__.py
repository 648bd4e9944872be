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

Modules: :mod:`~.people` (identities), :mod:`~.faces` (drawing), :mod:`~.voices` (speech
and the recording channel) and :mod:`~.corpus` (the files on disk).
"""

from speech2face.data.synthetic.corpus import FPS, VIDEO_SIZE, make_corpus
from speech2face.data.synthetic.faces import render_face, render_frame
from speech2face.data.synthetic.people import (
    ACCENT_LANGUAGES,
    SKIN_TONES,
    Identity,
    accent_of,
    random_id,
    random_identity,
)
from speech2face.data.synthetic.voices import AUDIO_RATE, record, synthesize_voice, voice_of

__all__ = [
    "ACCENT_LANGUAGES",
    "AUDIO_RATE",
    "FPS",
    "VIDEO_SIZE",
    "SKIN_TONES",
    "accent_of",
    "Identity",
    "make_corpus",
    "random_identity",
    "render_face",
    "random_id",
    "record",
    "render_frame",
    "synthesize_voice",
    "voice_of",
]

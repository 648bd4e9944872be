"""One segment -> one sample: decode, choose the speaker, align, landmarks.

:class:`SegmentProcessor` turns a :class:`~speech2face.data.sources.Segment` into a
:class:`KeptSample` (audio, aligned face crop, 68 landmarks, metadata); the face feature is
added later, in batches, by :mod:`speech2face.data.preprocess`, which also runs the chunks,
workers, resumption and merging.

The speaker's face: ``frames_per_clip`` frames are decoded, the first at the segment's start
(where a source's face-centre hint, e.g. AVSpeech's, places the speaker) and the others
every ``duration / frames_per_clip`` seconds. The speaker is chosen in the start frame (the
detection nearest the hint; without a hint the largest confident face of the first frame
that has one; when MTCNN misses it there, frames just after the start are tried, see
:data:`START_RETRY_SECONDS`), then followed into the other frames by face identity
(:func:`speech2face.faces.track.follow_speaker`), and the most frontal of the frames where
the speaker was found gives the crop.
"""

from __future__ import annotations

import bisect
import io
import math
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from speech2face.audio import SAMPLE_RATE
from speech2face.data.media import (
    MediaError,
    frame_times,
    probe,
    read_frames,
    read_image,
    read_pcm16,
)
from speech2face.data.shards import encode_wav, npy_bytes
from speech2face.data.sources import Media, Segment, Source
from speech2face.errors import ConfigError

if TYPE_CHECKING:
    from speech2face.faces import Detection

__all__ = [
    "START_RETRY_SECONDS",
    "START_WINDOW_SECONDS",
    "EncoderFactory",
    "KeptSample",
    "PreprocessOptions",
    "SegmentProcessor",
    "resolve_device",
]

EncoderFactory = Callable[[], Any]  # () -> face encoder: (B, 3, 224, 224) in [0, 1] -> (B, D)
# A frame at most this long after the segment's start still shows the speaker where the
# face-centre hint says (an AVSpeech face centre is the speaker's at the start).
START_WINDOW_SECONDS = 0.5
# When MTCNN finds no face near the hint in the start frame (a blink, motion blur), the
# frames this long after the start are tried, in order, before the segment is rejected.
START_RETRY_SECONDS = (0.2, 0.4)

Frames = list[tuple[float, np.ndarray]]  # (time in the file, (H, W, 3) uint8 RGB), by time


@dataclass(frozen=True)
class PreprocessOptions:
    """Per-segment settings (each changes the output, so each is part of the run's identity).

    Args:
        frames_per_clip: frames decoded per segment: one at its start, where the speaker is
            chosen, and the others spread through it, where the speaker is followed by
            identity; the most frontal of the speaker's faces gives the crop.
        min_seconds: segments with less audio are rejected (``too_short``).
        max_seconds: at most this much audio is kept per segment.
        min_face_prob, min_face_size: MTCNN detections below these are ignored.
        detect_max_side: frames are downscaled to this longer side for detection only.
        jpeg_quality: quality of the stored crops.
    """

    frames_per_clip: int = 5
    min_seconds: float = 3.0
    max_seconds: float = 10.0
    min_face_prob: float = 0.9
    min_face_size: int = 40
    detect_max_side: int = 640
    jpeg_quality: int = 95

    def __post_init__(self) -> None:
        # name -> (integer?, lowest, highest); every field is checked for type and range.
        limits = {
            "frames_per_clip": (True, 1, None),
            "min_seconds": (False, 0.0, None),
            "max_seconds": (False, 0.0, None),
            "min_face_prob": (False, 0.0, 1.0),
            "min_face_size": (True, 1, None),
            "detect_max_side": (True, 64, None),
            "jpeg_quality": (True, 1, 100),
        }
        for name, (integer, low, high) in limits.items():
            value = getattr(self, name)
            if integer:
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ConfigError(f"{name} must be an integer, got {_shown(value)}")
            else:
                if (
                    isinstance(value, bool)
                    or not isinstance(value, int | float)
                    or not math.isfinite(value)
                ):
                    raise ConfigError(f"{name} must be a finite number, got {_shown(value)}")
                value = float(value)
                object.__setattr__(self, name, value)  # 3 and 3.0: one setting
            if name in ("min_seconds", "max_seconds") and value <= 0:
                raise ConfigError(f"{name} must be > 0, got {value:g}")
            if value < low or (high is not None and value > high):
                span = f"in [{low}, {high}]" if high is not None else f">= {low}"
                raise ConfigError(f"{name} must be {span}, got {value:g}")
        if self.min_seconds > self.max_seconds:
            raise ConfigError(
                f"need min_seconds <= max_seconds, got {self.min_seconds:g} > {self.max_seconds:g}"
            )


def _shown(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    text = " ".join(text.split())
    return text if len(text) <= 60 else text[:60] + "..."


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is present, else ``cpu``; other names pass through."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass
class KeptSample:
    """A processed segment, waiting for its face feature."""

    key: str
    members: dict[str, bytes]  # everything but the metadata and the feature
    meta: dict[str, Any]  # becomes <key>.json once the feature is known
    crop: np.ndarray  # (224, 224, 3) uint8, the JPEG as decoded (the encoder's input)
    manifest: dict[str, Any]


@dataclass(frozen=True)
class _Speaker:
    """The speaker's face chosen for a segment, and how it was found."""

    frame_index: int  # in the searched frames (time order)
    detection: Detection
    frontality: float
    start_index: int  # the frame where the speaker was chosen
    tracked: int  # frames where the speaker was found, the start frame included
    compared: int  # other frames compared with the start face (the rest could not win)
    distance: float  # identity distance of the chosen face to the start face


class SegmentProcessor:
    """Turns segments into samples in one process; models are built on first use.

    Args:
        source: locates each segment's media (and downloads it when enabled).
        options: per-segment settings.
        encoder_factory: builds the face encoder (called once, in the worker).
        encoder_name: recorded with every feature.
        device: torch device for MTCNN and the encoder (``auto``: GPU when present).
        feature_batch_size: crops per encoder call.
    """

    def __init__(
        self,
        source: Source,
        options: PreprocessOptions,
        encoder_factory: EncoderFactory,
        encoder_name: str,
        device: str = "auto",
        feature_batch_size: int = 32,
    ) -> None:
        self.source = source
        self.options = options
        self.encoder_factory = encoder_factory
        self.encoder_name = encoder_name
        self.device = resolve_device(device)
        self.feature_batch_size = max(1, int(feature_batch_size))
        self.timings: Counter[str] = Counter()
        self._detector = None
        self._identity = None
        self._landmarker = None
        self._encoder = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()  # models are rebuilt where the processor lands
        state.update(_detector=None, _identity=None, _landmarker=None, _encoder=None)
        return state

    # models -----------------------------------------------------------------
    @property
    def detector(self):
        if self._detector is None:
            from speech2face.faces import FaceDetector

            self._detector = FaceDetector(
                device=self.device,
                max_side=self.options.detect_max_side,
                min_face_size=self.options.min_face_size,
            )
        return self._detector

    @property
    def identity(self):
        """dlib's face descriptor, to follow the speaker from frame to frame."""
        if self._identity is None:
            from speech2face.faces import FaceIdentity

            self._identity = FaceIdentity()
        return self._identity

    @property
    def landmarker(self):
        if self._landmarker is None:
            from speech2face.faces import Landmarker

            self._landmarker = Landmarker()
        return self._landmarker

    @property
    def encoder(self):
        if self._encoder is None:
            encoder = self.encoder_factory()
            if hasattr(encoder, "to"):
                encoder = encoder.to(self.device)
            if hasattr(encoder, "eval"):
                encoder.eval()
            self._encoder = encoder
        return self._encoder

    def features(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """``crops``: B arrays ``(224, 224, 3)`` uint8 -> ``(B, D)`` float16 features."""
        import torch

        out = []
        for start in range(0, len(crops), self.feature_batch_size):
            batch = np.stack(crops[start : start + self.feature_batch_size])
            images = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255.0)
            with torch.inference_mode():
                feats = self.encoder(images.to(self.device))  # (B, D)
            out.append(feats.float().cpu().numpy())
        return np.concatenate(out).astype(np.float16)

    # one segment ------------------------------------------------------------
    def _timed(self, stage: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        try:
            return fn()
        finally:
            self.timings[stage] += time.perf_counter() - start

    def process(self, segment: Segment) -> KeptSample:
        """Audio, the speaker's face, crop, landmarks and metadata of ``segment`` (no
        feature yet).

        Raises :class:`MediaError` with the reason the segment is rejected.
        """
        media = self._timed("locate", lambda: self.source.locate(segment))
        try:
            return self._process(segment, media)
        finally:
            self.source.release(media)

    def _process(self, segment: Segment, media: Media) -> KeptSample:
        opts = self.options
        audio_path = media.video or media.audio
        if media.video is not None:
            info = self._timed("audio", lambda: probe(media.video))
            if not info.has_video:
                raise MediaError("no_video_stream", f"{media.video.name}: has no video stream")
            if not info.has_audio:
                raise MediaError("no_audio_stream", f"{media.video.name}: has no audio stream")
        wanted = opts.max_seconds
        if segment.end is not None:
            wanted = min(wanted, segment.end - segment.start)
        if wanted < opts.min_seconds:
            raise MediaError("too_short", f"segment is {wanted:.2f} s, need {opts.min_seconds:g} s")
        pcm = None
        if audio_path is not None:
            pcm = self._timed(
                "audio", lambda: read_pcm16(audio_path, media.offset, wanted, opts.min_seconds)
            )
        duration = wanted if pcm is None else pcm.size / SAMPLE_RATE

        if media.video is not None:
            times = frame_times(media.offset, media.offset + duration, opts.frames_per_clip)
            frames = self._timed("video", lambda: read_frames(media.video, times))
            if not frames:
                raise MediaError("decode_error", f"{media.video.name}: no frame could be decoded")
        else:
            assert media.image is not None
            image = self._timed("video", lambda: read_image(media.image))
            frames = [(0.0, image)]

        speaker = self._speaker(segment, media, frames, duration)
        return self._timed(
            "align", lambda: self._sample(segment, media, frames, speaker, pcm, duration)
        )

    def _detect(self, frames: Frames) -> list[list[Detection]]:
        """MTCNN detections of each frame (frames of one size go in one batch)."""
        by_size: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, (_, frame) in enumerate(frames):
            by_size[frame.shape].append(i)
        detections: list[list[Detection]] = [[] for _ in frames]
        for indices in by_size.values():  # frames of one video share a size: one batch
            found = self.detector.detect(np.stack([frames[i][1] for i in indices]))
            for i, dets in zip(indices, found, strict=True):
                detections[i] = dets
        return detections

    def _pick(
        self, detections: list[Detection], hint: tuple[float, float] | None, frame: np.ndarray
    ) -> Detection | None:
        """The speaker's detection in ``frame`` by position: nearest the normalised ``hint``,
        else the largest; ``None`` when no confident face qualifies."""
        from speech2face.faces import pick_detection

        return pick_detection(
            detections,
            _centre(hint, frame),
            min_prob=self.options.min_face_prob,
            min_size=self.options.min_face_size,
        )

    def _speaker(self, segment: Segment, media: Media, frames: Frames, duration: float) -> _Speaker:
        """Choose the speaker at the segment's start and follow them by identity.

        ``frames`` (sorted by time) may gain the frames tried after a missed start
        (:data:`START_RETRY_SECONDS`). Raises :class:`MediaError` (``no_face``) when the
        speaker cannot be chosen.
        """
        from speech2face.faces import follow_speaker

        hint = segment.face_xy
        detections = self._timed("detect", lambda: self._detect(frames))
        if hint is None:  # the largest face of the first frame that has a confident one
            found = (i for i, d in enumerate(detections) if self._pick(d, None, frames[i][1]))
            start = next(found, None)
        else:  # the hint holds at the start only
            start = self._start_with_hint(hint, media, frames, detections, duration)
        if start is None:
            where = "" if hint is None else " near the face centre at the segment's start"
            raise MediaError("no_face", f"no face found{where} in {len(frames)} frame(s)")
        track = self._timed(
            "track",
            lambda: follow_speaker(
                detections,
                start,
                _centre(hint, frames[start][1]),
                lambda i, detection: self.identity(frames[i][1], detection.box),
                min_prob=self.options.min_face_prob,
                min_size=self.options.min_face_size,
                best_only=True,  # the same crop with about half the descriptors
            ),
        )
        assert track is not None  # the start frame has the speaker's face
        index, detection, score = track.most_frontal()
        distance = float(track.distances[index] or 0.0)
        return _Speaker(index, detection, score, start, track.found, track.compared, distance)

    def _start_with_hint(
        self,
        hint: tuple[float, float],
        media: Media,
        frames: Frames,
        detections: list[list[Detection]],
        duration: float,
    ) -> int | None:
        """Index of the frame where the hint chooses the speaker: the first frame within
        :data:`START_WINDOW_SECONDS` of the start with a face near the hint. When there is
        none, the :data:`START_RETRY_SECONDS` frames are decoded and tried in turn; each
        one tried joins ``frames`` and ``detections`` in time order."""

        def near_start(t: float) -> bool:
            return t - media.offset <= START_WINDOW_SECONDS + 1e-6

        for i, (t, frame) in enumerate(frames):
            if not near_start(t):
                break
            if self._pick(detections[i], hint, frame) is not None:
                return i
        if media.video is None:
            return None
        retry = [media.offset + s for s in START_RETRY_SECONDS if s < duration]
        extra = self._timed("video", lambda: read_frames(media.video, retry))
        seen = {t for t, _ in frames}
        extra = [(t, frame) for t, frame in extra if near_start(t) and t not in seen]
        if not extra:
            return None
        extra_detections = self._timed("detect", lambda: self._detect(extra))
        for (t, frame), dets in zip(extra, extra_detections, strict=True):
            i = bisect.bisect_right([time_ for time_, _ in frames], t)
            frames.insert(i, (t, frame))
            detections.insert(i, dets)
            if self._pick(dets, hint, frame) is not None:
                return i
        return None

    def _sample(
        self,
        segment: Segment,
        media: Media,
        frames: Frames,
        speaker: _Speaker,
        pcm: np.ndarray | None,
        duration: float,
    ) -> KeptSample:
        from PIL import Image

        from speech2face.faces import align_face, transform_points

        detection = speaker.detection
        frame_time, frame = frames[speaker.frame_index]
        crop, matrix = align_face(frame, detection.landmarks)
        buffer = io.BytesIO()
        Image.fromarray(crop).save(buffer, format="JPEG", quality=self.options.jpeg_quality)
        jpeg = buffer.getvalue()
        with Image.open(io.BytesIO(jpeg)) as decoded:
            crop = np.asarray(decoded.convert("RGB"))  # what every later reader sees
        lm68 = self.landmarker(crop)
        media_name = (media.video or media.audio or media.image).name
        face = {
            "frame_time": round(frame_time - media.offset, 3),
            "frame_index": speaker.frame_index,
            "start_frame_time": round(frames[speaker.start_index][0] - media.offset, 3),
            "frame_size": [int(frame.shape[1]), int(frame.shape[0])],
            "box": _rounded(detection.box),
            "prob": round(float(detection.prob), 4),
            "landmarks5": _rounded(detection.landmarks),
            "landmarks5_crop": _rounded(transform_points(detection.landmarks, matrix)),
            "frontality": round(float(speaker.frontality), 4),
            "identity_distance": round(speaker.distance, 4),
            "tracked_frames": speaker.tracked,
            "compared_frames": speaker.compared,
            "frames_searched": len(frames),
        }
        meta = {
            "key": segment.key,
            "source": segment.source,
            "speaker": segment.speaker,
            "split": segment.split,
            "media": media_name,
            "start": round(segment.start, 3),
            "end": None if segment.end is None else round(segment.end, 3),
            "duration": round(duration, 3),
            "sample_rate": SAMPLE_RATE if pcm is not None else None,
            "has_audio": pcm is not None,
            "labels": segment.labels,
            "face": face,
            "face_encoder": self.encoder_name,
        }
        if segment.youtube_id is not None:
            meta["youtube_id"] = segment.youtube_id
        members = {"jpg": jpeg, "lm68.npy": npy_bytes(lm68.astype(np.float32))}
        if pcm is not None:
            members["wav"] = encode_wav(pcm)
        manifest = {
            "key": segment.key,
            "split": segment.split,
            "speaker": segment.speaker,
            "duration": meta["duration"],
            "has_audio": pcm is not None,
            "source": segment.source,
            "start": meta["start"],
            "end": meta["end"],
            "labels": segment.labels,
        }
        return KeptSample(segment.key, members, meta, crop, manifest)


def _centre(hint: tuple[float, float] | None, frame: np.ndarray) -> tuple[float, float] | None:
    """A normalised face centre (x, y in [0, 1]) in ``frame``'s pixels."""
    if hint is None:
        return None
    return (hint[0] * frame.shape[1], hint[1] * frame.shape[0])


def _rounded(array: np.ndarray, digits: int = 2) -> list:
    return np.round(np.asarray(array, dtype=np.float64), digits).tolist()

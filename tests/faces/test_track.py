"""Following the speaker by identity: hand-made detections with fake identity vectors, then
dlib's real descriptor on rendered faces."""

from __future__ import annotations

import numpy as np
import pytest

from speech2face.data.synthetic import random_identity, render_frame
from speech2face.errors import S2FError
from speech2face.faces import (
    SAME_PERSON_DISTANCE,
    Detection,
    FaceDetector,
    FaceIdentity,
    follow_speaker,
    frontality,
)

SPEAKER = np.array([1.0, 0.0, 0.0])  # fake identity vectors, 1.41 apart
BYSTANDER = np.array([0.0, 1.0, 0.0])


def face(x: float, y: float, size: float = 80.0, yaw: float = 0.0, prob: float = 0.99):
    """A detection centred at (x, y) whose landmarks give frontality ``1 - |yaw|``."""
    h = size / 2
    box = np.array([x - h, y - h, x + h, y + h], dtype=np.float32)
    e = size / 5  # half the eye distance
    landmarks = np.array(
        [
            (x - e, y - e),
            (x + e, y - e),
            (x + yaw * e, y),  # the nose, halfway between the eye and mouth lines
            (x - e, y + e),
            (x + e, y + e),
        ],
        dtype=np.float32,
    )
    return Detection(box=box, prob=prob, landmarks=landmarks)


def identities(table: dict[tuple[int, int], np.ndarray], calls: list | None = None):
    """An identity function over ``{(frame, id(detection)): vector}``."""

    def identity_fn(index: int, detection: Detection) -> np.ndarray:
        if calls is not None:
            calls.append((index, id(detection)))
        return table[(index, id(detection))]

    return identity_fn


def test_the_speaker_is_followed_by_identity_across_a_cut():
    """After the cut a frontal, larger bystander stands where the speaker stood and the
    speaker stands elsewhere: the track follows the speaker, never the position."""
    start = face(60, 100, yaw=0.6)
    cut_bystander, cut_speaker = face(60, 100, size=100), face(200, 100, yaw=0.2)
    later_bystander = face(62, 100, size=100)
    frames = [[start], [cut_bystander, cut_speaker], [later_bystander]]
    table = {
        (0, id(start)): SPEAKER,
        (1, id(cut_bystander)): BYSTANDER,
        (1, id(cut_speaker)): SPEAKER + 0.1,
        (2, id(later_bystander)): BYSTANDER,
    }
    track = follow_speaker(frames, 0, (60.0, 100.0), identities(table))
    assert track is not None
    assert track.faces == (start, cut_speaker, None)  # not found in frame 2: skipped
    assert track.found == 2
    assert track.distances[0] == 0.0 and track.distances[1] == pytest.approx(np.sqrt(0.03))
    index, chosen, score = track.most_frontal()
    assert (index, chosen) == (1, cut_speaker) and score == pytest.approx(0.8)
    assert frontality(cut_bystander.landmarks) > score  # a picker by frontality would fail


def test_someone_seen_beside_the_speaker_at_the_start_is_never_the_speaker():
    """Measured on the synthetic corpus: a blinking speaker (0.40 from the start face) and a
    look-alike bystander in the background (0.33) -- the bystander is the nearer to the
    start face, but nearer still to their own face in the start frame."""
    start, beside = face(100, 120, size=70, yaw=0.4), face(210, 60, size=45)
    blinking, bystander = face(104, 120, size=70, yaw=0.2), face(210, 60, size=45)
    look_alike = SPEAKER + [0.0, 0.33, 0.0]
    table = {
        (0, id(start)): SPEAKER,
        (0, id(beside)): look_alike,
        (1, id(blinking)): SPEAKER + [0.0, 0.0, 0.4],
        (1, id(bystander)): look_alike + [0.0, 0.0, 0.01],
    }
    track = follow_speaker(
        [[start, beside], [blinking, bystander]], 0, (100.0, 120.0), identities(table)
    )
    assert track.faces == (start, blinking)
    assert track.distances[1] == pytest.approx(0.4)


def test_a_speaker_never_found_again_keeps_the_start_frame():
    start = face(60, 100, yaw=0.5)
    others = [[face(60, 100, size=120)], [], [face(200, 100, prob=0.5)]]  # stranger, none, weak
    table = {(0, id(start)): SPEAKER, (1, id(others[0][0])): BYSTANDER}
    calls: list = []
    track = follow_speaker([[start], *others], 0, (60.0, 100.0), identities(table, calls))
    assert track.faces == (start, None, None, None) and track.found == 1
    assert track.most_frontal()[:2] == (0, start)
    # Only confident detections are compared; the weak one is never embedded.
    assert sorted(calls) == sorted([(0, id(start)), (1, id(others[0][0]))])


def test_no_identity_is_computed_when_no_other_frame_has_a_face():
    start = face(60, 100)
    calls: list = []
    track = follow_speaker([[start], [], []], 0, None, identities({}, calls))
    assert track.found == 1 and calls == []


def test_the_nearest_face_within_the_threshold_is_the_speaker():
    start = face(100, 100)
    near, nearer = face(40, 100), face(160, 100)
    table = {
        (0, id(start)): SPEAKER,
        (1, id(near)): SPEAKER + [0.0, 0.0, 0.3],
        (1, id(nearer)): SPEAKER + [0.0, 0.0, 0.1],
    }
    track = follow_speaker([[start], [near, nearer]], 0, (100.0, 100.0), identities(table))
    assert track.faces[1] is nearer
    # A stricter threshold rejects both.
    track = follow_speaker([[start], [near, nearer]], 0, (100.0, 100.0), identities(table), 0.05)
    assert track.faces[1] is None


def test_the_start_frame_decides_who_speaks():
    """With a hint the speaker is the face nearest it at the start (not the largest); with
    none, the largest face; no face near the hint at the start: no speaker."""
    small, large = face(60, 100, size=60), face(200, 100, size=120)
    later_small, later_large = face(60, 100, size=60, yaw=0.1), face(200, 100, size=120)
    frames = [[small, large], [later_large, later_small]]
    table = {
        (0, id(small)): SPEAKER,
        (0, id(large)): BYSTANDER,
        (1, id(later_small)): SPEAKER,
        (1, id(later_large)): BYSTANDER,
    }
    hinted = follow_speaker(frames, 0, (60.0, 100.0), identities(table))
    assert hinted.faces == (small, later_small)
    largest = follow_speaker(frames, 0, None, identities(table))
    assert largest.faces == (large, later_large)
    assert follow_speaker(frames, 0, (130.0, 420.0), identities(table)) is None
    # The start may be any frame: earlier frames are searched too.
    table[(0, id(small))], table[(1, id(later_small))] = SPEAKER + 0.05, SPEAKER
    from_second = follow_speaker(frames, 1, (60.0, 100.0), identities(table))
    assert from_second.start_index == 1 and from_second.faces == (small, later_small)
    with pytest.raises(IndexError):
        follow_speaker(frames, 2, None, identities(table))


def test_ties_in_frontality_go_to_the_more_confident_then_the_earlier_face():
    a, b, c = face(60, 100, prob=0.95), face(60, 100, prob=0.99), face(60, 100, prob=0.99)
    table = {(0, id(a)): SPEAKER, (1, id(b)): SPEAKER, (2, id(c)): SPEAKER}
    track = follow_speaker([[a], [b], [c]], 0, None, identities(table))
    assert track.most_frontal()[:2] == (1, b)


# --------------------------------------------------------------------------- dlib


SIZE = 320


def test_dlib_descriptor_tells_two_rendered_people_apart():
    """Same person at two poses within SAME_PERSON_DISTANCE, nearer than two people."""
    from PIL import Image

    rng = np.random.default_rng(3)
    a, b = random_identity(rng, "a", "x"), random_identity(rng, "b", "x")
    background = Image.new("RGB", (SIZE, SIZE), (120, 140, 160))
    frames = np.stack(
        [
            render_frame(background, [(a, 90, 160, 110, 0.0, 0.2, False)]),
            render_frame(
                background,
                [(b, 90, 160, 110, 0.0, 0.2, False), (a, 235, 160, 100, 0.3, 0.6, False)],
            ),
        ]
    )
    detections = FaceDetector().detect(frames)
    identity = FaceIdentity()
    start = max(detections[0], key=lambda d: d.prob)
    reference = identity(frames[0], start.box)
    assert reference.shape == (128,) and reference.dtype == np.float32
    by_x = sorted(detections[1], key=lambda d: d.centre[0])
    assert len(by_x) == 2
    other, same = (float(np.linalg.norm(identity(frames[1], d.box) - reference)) for d in by_x)
    assert same < SAME_PERSON_DISTANCE and same < other
    track = follow_speaker(detections, 0, (90.0, 160.0), lambda i, d: identity(frames[i], d.box))
    assert track.faces[1] is by_x[1]  # the same person, who moved
    # dlib's own C++ forward on the same chips: the default PyTorch network agrees with it
    native = FaceIdentity(backend="dlib")
    for frame, detection in ((frames[0], start), *((frames[1], d) for d in by_x)):
        np.testing.assert_allclose(
            identity(frame, detection.box), native(frame, detection.box), rtol=0, atol=5e-6
        )
    with pytest.raises(S2FError, match="backend must be one of torch, dlib"):
        FaceIdentity(backend="onnx")

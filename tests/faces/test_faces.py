"""Faces: MTCNN detection on rendered faces, choosing the speaker, frontality, alignment and
dlib's 68 landmarks (all real models, offline)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from speech2face.data.synthetic import random_identity, render_frame
from speech2face.faces import (
    CROP_SIZE,
    NUM_LANDMARKS,
    TEMPLATE,
    Detection,
    FaceDetector,
    Landmarker,
    align_face,
    frontality,
    pick_detection,
    similarity_transform,
    transform_points,
)

SIZE = 320  # frame side, pixels


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


@pytest.fixture(scope="module")
def people():
    rng = np.random.default_rng(5)
    return [random_identity(rng, f"p{i}", "x") for i in range(4)]


def frame(faces) -> np.ndarray:
    """``faces``: ``(identity, x, y, height, yaw)`` -> ``(SIZE, SIZE, 3)`` uint8."""
    background = Image.new("RGB", (SIZE, SIZE), (110, 140, 160))
    return render_frame(background, [(p, x, y, h, yaw, 0.2, False) for p, x, y, h, yaw in faces])


def test_similarity_transform_recovers_a_known_transform():
    angle, scale, shift = np.deg2rad(20), 1.5, np.array([30.0, -12.0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = np.random.default_rng(0).uniform(0, 100, (5, 2))
    dst = src @ (scale * rotation).T + shift
    matrix = similarity_transform(src, dst)
    np.testing.assert_allclose(matrix[:, :2], scale * rotation, atol=1e-9)
    np.testing.assert_allclose(transform_points(src, matrix), dst, atol=1e-4)


def test_detects_each_face_and_picks_the_speaker(detector, people):
    speaker, other = people[0], people[1]
    image = frame([(speaker, 200, 190, 130, 0.0), (other, 70, 80, 80, 0.0)])
    (detections,) = detector.detect(image[None])
    assert len(detections) == 2
    near_other = pick_detection(detections, centre=(70, 80))
    near_speaker = pick_detection(detections, centre=(200, 190))
    assert np.hypot(*(near_other.centre - (70, 80))) < 20
    assert np.hypot(*(near_speaker.centre - (200, 190))) < 20
    assert pick_detection(detections) is near_speaker  # no centre: the largest
    assert pick_detection(detections, min_size=1000) is None


def test_downscaled_detection_maps_back_to_the_frame(detector, people):
    image = frame([(people[2], 160, 160, 150, 0.0)])
    big = np.asarray(Image.fromarray(image).resize((3 * SIZE, 3 * SIZE)))
    (small,) = detector.detect(image[None])
    (large,) = FaceDetector(max_side=SIZE).detect(big[None])  # detected at 320, mapped to 960
    tolerance = 0.06 * large[0].size  # MTCNN's own jitter between resampled copies
    np.testing.assert_allclose(large[0].box, 3 * small[0].box, atol=tolerance)
    np.testing.assert_allclose(large[0].landmarks, 3 * small[0].landmarks, atol=tolerance)


def test_frontality_prefers_the_frontal_face(detector, people):
    frames = np.stack([frame([(people[3], 160, 160, 150, yaw)]) for yaw in (0.0, 0.45, 0.9)])
    scores = [frontality(pick_detection(d).landmarks) for d in detector.detect(frames)]
    assert scores[0] > scores[1] > scores[2]
    assert frontality(TEMPLATE) == pytest.approx(1.0, abs=0.02)
    profile = TEMPLATE.copy()
    profile[2, 0] = TEMPLATE[1, 0]  # nose over the right eye
    assert frontality(profile) == pytest.approx(0.0, abs=0.02)


def test_alignment_puts_the_landmarks_on_the_template(detector, people):
    image = frame([(people[0], 150, 170, 140, 0.0)])
    (detections,) = detector.detect(image[None])
    face = pick_detection(detections)
    crop, matrix = align_face(image, face.landmarks)
    assert crop.shape == (CROP_SIZE, CROP_SIZE, 3) and crop.dtype == np.uint8
    np.testing.assert_allclose(transform_points(face.landmarks, matrix), TEMPLATE, atol=6)
    # A rotated, shifted copy of the face aligns to (nearly) the same crop.
    turned = np.asarray(Image.fromarray(image).rotate(15, center=(150, 170), translate=(10, -5)))
    (detections,) = detector.detect(turned[None])
    crop2, _ = align_face(turned, pick_detection(detections).landmarks)
    assert np.abs(crop.astype(int) - crop2.astype(int)).mean() < 20


def test_68_landmarks_on_the_aligned_crop(detector, people):
    image = frame([(people[1], 160, 160, 150, 0.0)])
    face = pick_detection(detector.detect(image[None])[0])
    crop, _ = align_face(image, face.landmarks)
    points = Landmarker()(crop)
    assert points.shape == (NUM_LANDMARKS, 2) and points.dtype == np.float32
    assert (points >= 0).all() and (points < CROP_SIZE).all()
    left_eye, right_eye = points[36:42].mean(0), points[42:48].mean(0)
    np.testing.assert_allclose(left_eye, TEMPLATE[0], atol=10)
    np.testing.assert_allclose(right_eye, TEMPLATE[1], atol=10)
    nose_tip, mouth, chin = points[30], points[48:68].mean(0), points[8]
    assert left_eye[1] < nose_tip[1] < mouth[1] < chin[1]  # top to bottom
    assert points[0, 0] < left_eye[0] < right_eye[0] < points[16, 0]  # left to right


def test_detection_dataclass_geometry():
    d = Detection(box=np.array([10, 20, 50, 80], np.float32), prob=0.99, landmarks=np.zeros((5, 2)))
    assert d.size == 40 and tuple(d.centre) == (30, 50)


def test_a_distant_face_is_not_the_speaker(detector, people):
    """With the speaker's face centre given, a face far from it (a bystander) is refused:
    the frame counts as having no speaker face."""
    image = frame([(people[1], 70, 80, 80, 0.0)])  # the only face, top left
    (detections,) = detector.detect(image[None])
    (face,) = detections
    assert pick_detection(detections, centre=(260, 260)) is None
    assert pick_detection(detections, centre=(70, 80)) is face  # inside the box
    width = face.box[2] - face.box[0]
    beside = (face.box[2] + 0.9 * width, (face.box[1] + face.box[3]) / 2)
    assert pick_detection(detections, centre=beside) is face  # within one box width
    farther = (face.box[2] + 1.1 * width, beside[1])
    assert pick_detection(detections, centre=farther) is None
    assert pick_detection(detections) is face  # no centre: the largest face

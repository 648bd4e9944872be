"""Each face encoder sees the region of the aligned crop that its network was trained on.

References are the encoders' own pipelines on real faces that ship in scikit-image (the
astronaut; LFW faces, upscaled onto a plain background): dlib's detector, 5-point predictor
and chip on the original image; facenet-pytorch's MTCNN box and ``extract_face``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from speech2face.faces import FaceDetector, align_face, pick_detection, transform_points
from speech2face.models import DlibFaceEncoder
from speech2face.models.face_encoder import FACENET_BOX, FaceNetEncoder, crop_and_resize
from tests.models.faces import real_faces

DLIB_SAME_PERSON = 0.6  # dlib's Euclidean threshold for "same person"


@pytest.fixture(scope="module")
def aligned():
    """``(frame, MTCNN detection, aligned crop, frame -> crop matrix)`` per real face."""
    detector = FaceDetector()
    out = []
    for frame in real_faces():
        face = pick_detection(detector.detect(frame[None])[0])
        assert face is not None
        crop, matrix = align_face(frame, face.landmarks)
        out.append((frame, face, crop, matrix))
    return out


def as_batch(crops: list[np.ndarray]) -> torch.Tensor:  # -> (B, 3, H, W) in [0, 1]
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255


def test_dlib_feature_of_the_crop_matches_dlibs_own_on_the_original(aligned):
    import dlib
    import face_recognition_models as models

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(models.pose_predictor_five_point_model_location())
    net = dlib.face_recognition_model_v1(models.face_recognition_model_location())
    encoder = DlibFaceEncoder()
    ours, before = [], []
    for frame, _, crop, _ in aligned:
        boxes = detector(frame, 0)  # faces here are 100+ px: no upsampling needed
        if not boxes:
            continue  # dlib's own pipeline finds no face: no reference
        box = max(boxes, key=lambda r: r.area())
        reference = np.asarray(net.compute_face_descriptor(frame, predictor(frame, box)))
        feature = encoder(as_batch([crop]))[0].numpy()
        ours.append(np.linalg.norm(feature - reference))
        # What the encoder did before: the whole 224 crop resized to dlib's 150 chip.
        whole = np.asarray(Image.fromarray(crop).resize((150, 150), Image.Resampling.BILINEAR))
        before.append(np.linalg.norm(np.asarray(net.compute_face_descriptor(whole)) - reference))
    ours, before = np.array(ours), np.array(before)
    assert len(ours) >= 0.8 * len(aligned)
    assert ours.max() < DLIB_SAME_PERSON / 2  # a wide margin: measured max 0.16, mean 0.05
    assert ours.mean() < 0.1
    assert before.mean() > 3 * ours.mean()  # measured 0.64 before


def test_facenet_box_is_where_mtcnn_puts_the_face_in_aligned_crops(aligned):
    """FACENET_BOX is the median of MTCNN's boxes mapped into the aligned crops."""
    boxes = []
    for _, face, _, matrix in aligned:
        centre = transform_points(face.centre[None], matrix)[0]
        scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
        half = scale * np.array([face.box[2] - face.box[0], face.box[3] - face.box[1]]) / 2
        boxes.append([*(centre - half), *(centre + half)])
    np.testing.assert_allclose(np.median(boxes, axis=0), FACENET_BOX, atol=3.0)


def test_crop_and_resize_matches_facenet_pytorchs_extract_face(aligned):
    from facenet_pytorch.models.utils.detect_face import extract_face

    crop = aligned[0][2]
    box = [int(v) for v in FACENET_BOX]  # extract_face truncates the box to integers
    reference = extract_face(Image.fromarray(crop), np.array(box, float), image_size=160)
    ours = crop_and_resize(as_batch([crop]), box, (160, 160))[0] * 255
    assert (ours - reference).abs().mean() < 1.0  # grey levels


def test_facenet_input_is_the_box_standardised():
    torch.manual_seed(0)
    encoder = FaceNetEncoder()  # random weights: only the preprocessing is checked
    images = torch.rand(2, 3, 224, 224, requires_grad=True)
    x = encoder.preprocess(images)
    assert x.shape == (2, 3, 160, 160)
    expected = (crop_and_resize(images, FACENET_BOX, (160, 160)) * 255 - 127.5) / 128
    torch.testing.assert_close(x, expected)
    x.sum().backward()  # differentiable: the identity loss back-propagates into portraits
    assert images.grad is not None and images.grad.abs().sum() > 0
    # A crop of another size uses the same box, scaled.
    half = encoder.preprocess(torch.nn.functional.interpolate(images.detach(), size=112))
    assert half.shape == (2, 3, 160, 160)

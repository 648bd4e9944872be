import copy
import pickle

import pytest
import torch

from speech2face.models import DlibFaceEncoder, FaceEncoderError, build_face_encoder
from tests.models.faces import draw_face, face_batch


@pytest.fixture(scope="module")
def dlib_encoder() -> DlibFaceEncoder:
    return build_face_encoder("dlib")


def test_dlib_feature_is_128d_and_unit_scale(dlib_encoder):
    crops = face_batch(draw_face())
    features = dlib_encoder(crops)
    assert features.shape == (1, 128)
    assert features.dtype == torch.float32
    assert 0.5 < features.norm(dim=1).item() < 2.0
    assert dlib_encoder.dim == 128
    assert not dlib_encoder.has_logits
    assert not dlib_encoder.differentiable


def test_dlib_is_deterministic_and_batch_independent(dlib_encoder):
    a, b = draw_face(), draw_face(skin=(140, 100, 80), eye_gap=0.03, face_width=0.04)
    batch = dlib_encoder(face_batch(a, b, a))
    assert torch.equal(batch[0], batch[2])
    assert torch.equal(dlib_encoder(face_batch(a))[0], batch[0])
    assert torch.equal(dlib_encoder(face_batch(b))[0], batch[1])
    assert (batch[0] - batch[1]).norm() > 1e-3


def test_dlib_copies_and_pickles(dlib_encoder):
    crops = face_batch(draw_face())
    clone = pickle.loads(pickle.dumps(dlib_encoder))
    assert torch.equal(clone(crops), dlib_encoder(crops))
    assert copy.deepcopy(dlib_encoder).model_path == dlib_encoder.model_path


def test_dlib_rejects_bad_input(dlib_encoder, tmp_path):
    with pytest.raises(FaceEncoderError, match=r"\(B, 3, 224, 224\)"):
        dlib_encoder(torch.zeros(1, 224, 224))
    with pytest.raises(FaceEncoderError, match="not found"):
        DlibFaceEncoder(model_path=tmp_path / "missing.dat")
    with pytest.raises(FaceEncoderError, match="no classification head"):
        dlib_encoder.logits(torch.zeros(1, 128))
    with pytest.raises(FaceEncoderError, match="unknown face encoder 'nope'"):
        build_face_encoder("nope")


def test_the_pytorch_network_gives_dlibs_own_descriptors(dlib_encoder):
    # The same crops through dlib's C++ forward: the default backend (DlibResNet) agrees.
    native = DlibFaceEncoder(backend="dlib")
    a, b = draw_face(), draw_face(skin=(140, 100, 80), eye_gap=0.03, face_width=0.04)
    crops = face_batch(a, b)
    assert dlib_encoder.backend == "torch"
    torch.testing.assert_close(dlib_encoder(crops), native(crops), rtol=0, atol=5e-6)
    assert "backend=torch" in repr(dlib_encoder)
    assert dlib_encoder.state_dict() == {}  # the weights are read from the .dat, not saved


def test_dlib_backend_choices_are_checked():
    with pytest.raises(FaceEncoderError, match="backend must be one of torch, dlib"):
        DlibFaceEncoder(backend="onnx")
    with pytest.raises(FaceEncoderError, match="use backend=dlib"):
        DlibFaceEncoder(num_jitters=3)

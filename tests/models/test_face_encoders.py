"""VGG-Face and FaceNet behind the face encoder interface; loading public weight layouts."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision

from speech2face import weights
from speech2face.models import (
    FaceEncoderError,
    FaceNetEncoder,
    VGGFace,
    build_face_encoder,
    load_checkpoint,
    save_checkpoint,
)
from speech2face.models.face_encoder import VGGFACE_MEAN_RGB

# torchvision's vgg16 modules, in order, and their names in vgg_face_dag.pth.
VGG_DAG_NAMES = [
    "conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
    "conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3",
]  # fmt: skip
TORCHVISION_CONV_INDICES = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]


@pytest.fixture(scope="module")
def vgg_files(tmp_path_factory):
    """A random torchvision VGG-16 (2,622 classes) saved under vgg_face_dag.pth's key names."""
    torch.manual_seed(0)
    reference = torchvision.models.vgg16(num_classes=2622).eval()
    state = {}
    for name, index in zip(VGG_DAG_NAMES, TORCHVISION_CONV_INDICES, strict=True):
        state[f"{name}.weight"] = reference.features[index].weight.detach().clone()
        state[f"{name}.bias"] = reference.features[index].bias.detach().clone()
    for name, index in (("fc6", 0), ("fc7", 3), ("fc8", 6)):
        state[f"{name}.weight"] = reference.classifier[index].weight.detach().clone()
        state[f"{name}.bias"] = reference.classifier[index].bias.detach().clone()
    path = tmp_path_factory.mktemp("vgg") / "vgg_face_dag.pth"
    torch.save(state, path)
    return reference, state, path


@pytest.fixture(scope="module")
def vgg_loaded(vgg_files):
    return VGGFace.from_pretrained(vgg_files[2]).eval()


def test_public_key_names_and_shapes(vgg_files, vgg_loaded):
    _, state, _ = vgg_files
    model_state = vgg_loaded.state_dict()
    assert set(model_state) == set(state)
    assert len(model_state) == 32  # 13 convs + 3 fcs, weight and bias each
    assert model_state["fc6.weight"].shape == (4096, 25_088)
    assert model_state["fc8.weight"].shape == (2622, 4096)
    for key, value in state.items():
        assert model_state[key].shape == value.shape, key


def test_fc7_matches_torchvision_vgg16_with_the_same_weights(vgg_files, vgg_loaded):
    reference, _, _ = vgg_files
    torch.manual_seed(1)
    crops = torch.rand(2, 3, 224, 224)
    mean = torch.tensor(VGGFACE_MEAN_RGB).view(1, 3, 1, 1)
    with torch.no_grad():
        ours = vgg_loaded(crops)
        logits = vgg_loaded.logits(ours)
        trunk = torch.flatten(reference.avgpool(reference.features(crops * 255 - mean)), 1)
        fc7 = reference.classifier[:4](trunk)  # fc6, ReLU, dropout, fc7 (before its ReLU)
        full = reference.classifier(trunk)
    assert ours.shape == (2, 4096) and logits.shape == (2, 2622)
    scale = fc7.abs().max()
    assert (ours - fc7).abs().max() <= 1e-4 * scale
    assert (logits - full).abs().max() <= 1e-4 * full.abs().max()
    assert (ours < 0).any()  # fc7 before its ReLU keeps negative values


def test_from_pretrained_is_strict(vgg_files, tmp_path):
    _, state, _ = vgg_files
    partial = {key: torch.zeros(1) for key in state if key != "conv3_2.bias"}  # small file
    partial["extra.weight"] = torch.zeros(1)
    path = tmp_path / "broken.pth"
    torch.save(partial, path)
    with pytest.raises(FaceEncoderError) as info:
        VGGFace.from_pretrained(path)
    message = str(info.value)
    assert "missing conv3_2.bias; unexpected extra.weight; shape conv1_1.weight (1,)" in message
    assert "\n" not in message
    with pytest.raises(FaceEncoderError, match="not found"):
        VGGFace.from_pretrained(tmp_path / "absent.pth")


def test_vggface_checkpoint_and_lazy_weights(vgg_loaded, tmp_path):
    """A checkpoint saved by this project loads through both load paths; lazy loads later."""
    path = save_checkpoint(vgg_loaded, tmp_path / "vggface.pt")
    rebuilt = load_checkpoint(path)
    assert isinstance(rebuilt, VGGFace)
    for key, value in vgg_loaded.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[key], value), key
    # Our checkpoint also serves as ``weights``, here read lazily at the first forward pass.
    lazy = VGGFace(weights=path, lazy=True).eval()
    assert lazy.weights_pending
    assert not torch.equal(lazy.fc6.weight, vgg_loaded.fc6.weight)
    crop = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(lazy(crop), vgg_loaded(crop), atol=1e-5)
    assert not lazy.weights_pending


def test_registry_weights_offline_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv(weights.HOME_ENV, str(tmp_path))
    monkeypatch.setenv(weights.OFFLINE_ENV, "1")
    encoder = build_face_encoder("vggface", weights="vgg_face_dag", lazy=True)  # no file: fine
    with pytest.raises(weights.WeightsError) as info:
        encoder(torch.rand(1, 3, 224, 224))
    message = str(info.value)
    assert str(tmp_path / "weights" / "vgg_face_dag.pth") in message
    assert "robots.ox.ac.uk" in message
    with pytest.raises(weights.WeightsError, match="20180402-114759-vggface2.pt"):
        FaceNetEncoder(weights="facenet_vggface2")


def test_vggface_preprocessing_and_resizing():
    model = VGGFace()
    white = torch.ones(1, 3, 224, 224)
    values = model.preprocess(white)[0, :, 0, 0]
    expected = 255 - torch.tensor(VGGFACE_MEAN_RGB)
    assert torch.allclose(values, expected)
    assert model.preprocess(torch.rand(1, 3, 112, 112)).shape == (1, 3, 224, 224)
    with pytest.raises(FaceEncoderError, match="dim=512"):
        VGGFace(dim=512)


@pytest.fixture(scope="module")
def facenet():
    torch.manual_seed(0)
    return FaceNetEncoder().eval()


def test_facenet_features_logits_and_standardisation(facenet):
    crops = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        features = facenet(crops)
        logits = facenet.logits(features)
        # facenet-pytorch's own forward: the same features, L2-normalised.
        embedding = facenet.net(facenet.preprocess(crops))
    assert features.shape == (2, 512) and logits.shape == (2, 8631)
    assert facenet.dim == 512 and facenet.num_classes == 8631 and facenet.has_logits
    assert torch.allclose(F.normalize(features), embedding, atol=1e-5)
    pixels = facenet.preprocess(torch.ones(1, 3, 224, 224))
    assert pixels.shape == (1, 3, 160, 160)
    assert torch.allclose(pixels, torch.full_like(pixels, (255 - 127.5) / 128))


def test_facenet_loads_facenet_pytorch_state_dicts(facenet, tmp_path):
    """facenet-pytorch's released files hold the bare network (incl. ``logits``)."""
    state = {k: v.clone() for k, v in facenet.net.state_dict().items()}
    assert {"logits.weight", "logits.bias", "last_bn.running_mean"} <= set(state)
    path = tmp_path / "20180402-114759-vggface2.pt"
    torch.save(state, path)
    loaded = FaceNetEncoder(weights=path).eval()
    crops = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(loaded(crops), facenet(crops), atol=1e-5)
    ours = save_checkpoint(loaded, tmp_path / "facenet.pt")
    rebuilt = load_checkpoint(ours)
    assert isinstance(rebuilt, FaceNetEncoder)
    with torch.no_grad():
        assert torch.allclose(rebuilt(crops), facenet(crops), atol=1e-5)
    assert FaceNetEncoder(weights=ours).net.logits.weight.shape == (8631, 512)


def test_gradients_reach_the_pixels_of_a_frozen_encoder(facenet):
    facenet.freeze()
    crops = torch.rand(1, 3, 224, 224, requires_grad=True)
    facenet(crops).sum().backward()
    assert crops.grad is not None and crops.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in facenet.parameters())
